#!/usr/bin/env bash
# Run the test suite in its own environment: create .venv-test when absent (CPU torch 2.13.0 if it has no
# torch), install the pack's requirements and the test extras, then run pytest with any arguments given.
# The test extras pin opencv-python<5, so they never go into the .venv the README's main command made;
# CONSISID_VENV=<folder> chooses another environment.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CONSISID_VENV:-.venv-test}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip >/dev/null
"$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q -r requirements.txt -r tests/requirements.txt
export HF_HUB_OFFLINE=1
exec "$PY" -m pytest "$@"
