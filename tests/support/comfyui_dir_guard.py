"""The real-ComfyUI tests leave the user's ComfyUI checkout as they found it: no link in custom_nodes, no outputs,
settings or temp files, no changed file. A session fixture (wired in tests/conftest.py) lists COMFYUI_DIR before the
first test and after the last, so every test of the session that starts ComfyUI, in any file, is covered.

Python's bytecode caches (__pycache__, *.pyc) are left out: ComfyUI's interpreter writes them for ComfyUI's own
modules on every start, as any use of the checkout does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

Entry = tuple  # ("dir",) | ("link", target) | ("file", size, mtime_ns)


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under `root` (links not followed, bytecode caches left out) -> what it is."""
    found: dict[str, Entry] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in dirs + files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            if os.path.islink(path):
                found[relative] = ("link", os.readlink(path))
                if name in dirs:
                    dirs.remove(name)  # (os.walk does not enter links, but be explicit)
            elif name in dirs:
                found[relative] = ("dir",)
            elif not name.endswith(".pyc"):
                stat = os.stat(path)
                found[relative] = ("file", stat.st_size, stat.st_mtime_ns)
    return found


def changes(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """What differs between two snapshots, one line a path."""
    lines = [f"added {p} ({after[p][0]})" for p in sorted(set(after) - set(before))]
    lines += [f"removed {p}" for p in sorted(set(before) - set(after))]
    lines += [f"changed {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]]
    return lines


@pytest.fixture(scope="session", autouse=True)
def comfyui_dir_untouched():
    """Fails the session (an error at the last test's teardown) when COMFYUI_DIR changed while the tests ran."""
    root = os.environ.get("COMFYUI_DIR")
    if not root or not os.path.isdir(root):
        yield
        return
    before = snapshot(Path(root))
    yield
    found = changes(before, snapshot(Path(root)))
    assert not found, f"the tests left changes in COMFYUI_DIR={root}:\n" + "\n".join(found[:40])
