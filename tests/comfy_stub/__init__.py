"""A small stand-in for the parts of ComfyUI 0.8 the node pack touches, for tests without ComfyUI.

The modules in this folder (`folder_paths`, `comfy.utils`, `comfy.model_management`, `comfy.model_patcher`, `comfy.cli_args`,
`server`) keep the names and signatures of ComfyUI 0.8 (read from its source) and only what the pack uses.
`activate(base_path)` puts them on `sys.path` under their ComfyUI names (with the models/input/output
folders under `base_path`); `deactivate()` removes them again. `harness` runs API workflows the way
ComfyUI's executor does.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

STUB_DIR = Path(__file__).resolve().parent
MODULES = ("folder_paths", "comfy", "comfy.utils", "comfy.model_management", "comfy.patcher_extension", "comfy.lora",
           "comfy.model_patcher", "comfy.ops", "comfy.cli_args", "server")


def activate(base_path: str | Path):
    """Import the stand-ins as `folder_paths`, `comfy.*` and `server`, rooted at `base_path`; returns folder_paths."""
    deactivate()
    sys.path.insert(0, str(STUB_DIR))
    folder_paths = importlib.import_module("folder_paths")
    folder_paths.set_base_path(str(base_path))
    for name in MODULES[1:]:
        importlib.import_module(name)
    sys.modules["server"].PromptServer(None)  # ComfyUI creates its server before loading custom nodes
    sys.modules["comfy.utils"].set_progress_bar_global_hook(sys.modules["server"].progress_hook)
    return folder_paths


def deactivate() -> None:
    """Forget the stand-ins so later imports see no ComfyUI."""
    for name in MODULES:
        sys.modules.pop(name, None)
    while str(STUB_DIR) in sys.path:
        sys.path.remove(str(STUB_DIR))
