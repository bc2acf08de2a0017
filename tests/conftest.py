"""Shared test setup: offline hub, the repo root importable, tiny model folders built once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
for _path in (REPO_ROOT, TESTS_DIR):  # consisid_core, and the shared `support` helpers
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from support.comfyui_dir_guard import comfyui_dir_untouched  # noqa: E402,F401 (autouse: COMFYUI_DIR left as found)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory):
    """Build (and cache per session) tiny model folders keyed by their TinySpec."""
    from consisid_core.demo.video_models import TinySpec, write_tiny_model

    cache: dict = {}

    def make(**spec_fields) -> Path:
        spec = TinySpec(**spec_fields)
        if spec not in cache:
            folder = tmp_path_factory.mktemp("tiny_model")
            cache[spec] = write_tiny_model(folder, spec)
        return cache[spec]

    return make


@pytest.fixture(scope="session")
def tiny_model(tiny_model_factory) -> Path:
    """The default tiny model: 9 frames of 48x32, tokenizer.json, learned positions."""
    return tiny_model_factory()
