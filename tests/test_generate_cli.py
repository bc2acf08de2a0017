"""`python -m consisid_core generate`: the README's main job, end to end, and its failure messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "consisid_core", "generate", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


@pytest.mark.slow
def test_random_weights_run_the_whole_path_to_a_playable_mp4(tmp_path):
    """Photo -> identity (full-size random RetinaFace/BiSeNet/EVA, tiny antelopev2) -> tiny DiT with the real
    1280/1024 face-feature sizes -> mp4 at 8 fps with the requested number of frames."""
    from consisid_core.video import count_frames

    out = tmp_path / "demo.mp4"
    result = _run("--random-weights", "--steps", "2", "--frames", "9", "--out", str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "RANDOM WEIGHTS" in result.stdout and "NOISE" in result.stdout
    for stage in ("load face models", "extract identity", "load video model", "generate", "write mp4"):
        assert f"[{stage}] done in" in result.stdout
    assert out.is_file() and count_frames(out) == 9
    assert "wrote" in result.stdout and "9 frames, 384x256, 8 fps" in result.stdout


def test_missing_weights_give_one_message_not_a_traceback(tmp_path):
    result = _run("--model", str(tmp_path / "ConsisID-preview"), "--out", str(tmp_path / "x.mp4"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "the model is not ready" in result.stderr
    assert "detection_Resnet50_Final.pth" in result.stderr and "huggingface.co/BestWishYsh/ConsisID-preview" in result.stderr
    assert "--random-weights" in result.stderr


def test_download_offline_fails_clearly(tmp_path):
    result = _run("--model", str(tmp_path / "m"), "--download", "--out", str(tmp_path / "x.mp4"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "could not download BestWishYsh/ConsisID-preview" in result.stderr and "run the same command again" in result.stderr


def test_download_fetches_only_what_the_pack_uses():
    from consisid_core.download import ALLOW_PATTERNS

    assert "transformer/*" in ALLOW_PATTERNS and "face_encoder/models/antelopev2/glintr100.onnx" in ALLOW_PATTERNS
    assert not any("parsenet" in p or "data_process" in p or "curricular" in p for p in ALLOW_PATTERNS)
