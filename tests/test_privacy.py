"""onnxruntime's telemetry is off wherever the pack runs it (ORT_DISABLE_TELEMETRY, set by consisid_core)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SESSION = """
import sys
sys.path.insert(0, {repo!r})
if {with_pack}:
    import consisid_core
import onnxruntime as ort
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
"""


def _telemetry_files(home: Path, with_pack: bool, preset: str | None = None) -> list[Path]:
    """Files onnxruntime's telemetry leaves under $HOME (device id, offline event cache) after one session."""
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    if preset is not None:
        env["ORT_DISABLE_TELEMETRY"] = preset
    code = SESSION.format(repo=str(REPO), with_pack=with_pack)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, timeout=120)
    return [p for p in home.rglob("*") if "onnxruntime" in str(p).lower()]


def test_importing_the_pack_switches_onnxruntime_telemetry_off(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    if not _telemetry_files(tmp_path / "plain", with_pack=False):
        pytest.skip("this onnxruntime build has no telemetry (nothing written without the switch either)")
    assert _telemetry_files(tmp_path / "pack", with_pack=True) == []
    assert _telemetry_files(tmp_path / "optin", with_pack=True, preset="0"), "a user's own ORT_DISABLE_TELEMETRY=0 is kept"
