"""The guard that keeps the real-ComfyUI tests from leaving anything in COMFYUI_DIR (tests/support/comfyui_dir_guard.py):
it sees a link, an output, a changed settings file; it ignores bytecode caches; and a session whose test writes into
COMFYUI_DIR ends in an error naming the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.comfyui_dir_guard import changes, snapshot

TESTS = Path(__file__).resolve().parent


def _checkout(root: Path) -> Path:
    for folder in ("custom_nodes", "output", "user/default", "comfy"):
        (root / folder).mkdir(parents=True)
    (root / "main.py").write_text("print('ComfyUI')\n")
    (root / "user" / "default" / "comfy.settings.json").write_text("{}")
    return root


def test_a_link_an_output_and_a_changed_setting_are_seen_and_bytecode_is_not(tmp_path):
    root = _checkout(tmp_path / "ComfyUI")
    before = snapshot(root)
    (root / "comfy" / "__pycache__").mkdir()
    (root / "comfy" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    assert changes(before, snapshot(root)) == [], "a bytecode cache is not something a test left"

    (root / "custom_nodes" / "ComfyUI-ConsisID").symlink_to(TESTS.parent, target_is_directory=True)
    (root / "output" / "ConsisID_00001.mp4").write_bytes(b"video")
    settings = root / "user" / "default" / "comfy.settings.json"
    settings.write_text('{"Comfy.TutorialCompleted": true}')
    os.utime(settings, ns=(1, 1))
    (root / "main.py").unlink()
    assert changes(before, snapshot(root)) == [
        "added custom_nodes/ComfyUI-ConsisID (link)",
        "added output/ConsisID_00001.mp4 (file)",
        "removed main.py",
        "changed user/default/comfy.settings.json",
    ]


def test_a_session_that_writes_into_comfyui_dir_ends_in_an_error(tmp_path):
    root = _checkout(tmp_path / "ComfyUI")
    (tmp_path / "test_leaky.py").write_text(
        "import os\n"
        "def test_leaves_a_link():\n"
        "    os.symlink('/tmp', os.path.join(os.environ['COMFYUI_DIR'], 'custom_nodes', 'ComfyUI-ConsisID'))\n"
        "def test_clean():\n"
        "    pass\n")
    env = {**os.environ, "COMFYUI_DIR": str(root), "PYTHONPATH": str(TESTS)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "support.comfyui_dir_guard", "-p", "no:cacheprovider",
                          str(tmp_path / "test_leaky.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1, run.stdout[-2000:]
    assert "2 passed, 1 error" in run.stdout, run.stdout[-2000:]
    assert "added custom_nodes/ComfyUI-ConsisID (link)" in run.stdout

    (root / "custom_nodes" / "ComfyUI-ConsisID").unlink()
    (tmp_path / "test_leaky.py").write_text("def test_clean():\n    pass\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "support.comfyui_dir_guard", "-p", "no:cacheprovider",
                          str(tmp_path / "test_leaky.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
