"""A small stand-in for the parts of ComfyUI 0.8 the node pack touches, for tests without ComfyUI.

The modules in this folder (`folder_paths`, `comfy.utils`, `comfy.model_management`, `comfy.model_patcher`, `comfy.cli_args`,
`server`, and `comfy_api` with the V3 node schema `comfy_api.v0_0_2.io`) keep the names and signatures of ComfyUI 0.8
(read from its source) and only what the pack uses. `activate(base_path)` puts them on `sys.path` under their ComfyUI
names (with the models/input/output folders under `base_path`); `deactivate()` removes them again. `harness` runs API
workflows the way ComfyUI's executor does.

`comfy_api` holds no state, so it is imported once per process and the same module objects come back at every
activation: node classes built on `io.ComfyNode` in one test stay V3 nodes for the harness in the next.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

STUB_DIR = Path(__file__).resolve().parent
API_MODULES = ("comfy_api", "comfy_api.internal", "comfy_api.latest", "comfy_api.latest._io",
               "comfy_api.latest._io_public", "comfy_api.latest._ui", "comfy_api.latest._ui_public",
               "comfy_api.v0_0_2")
MODULES = ("folder_paths", "comfy", "comfy.utils", "comfy.model_management", "comfy.patcher_extension", "comfy.lora",
           "comfy.model_patcher", "comfy.ops", "comfy.cli_args", "server") + API_MODULES
_API_CACHE: dict = {}  # name -> module, the one comfy_api of this process


def api_module(name: str = "comfy_api.v0_0_2"):
    """The stand-in's `comfy_api` module `name`, active or not (loaded once per process, then reused)."""
    if not _API_CACHE:
        active = str(STUB_DIR) in sys.path
        if not active:
            sys.path.insert(0, str(STUB_DIR))
        try:
            for module in API_MODULES:
                _API_CACHE[module] = importlib.import_module(module)
        finally:
            if not active:
                sys.path.remove(str(STUB_DIR))
                for module in API_MODULES:
                    sys.modules.pop(module, None)
    return _API_CACHE[name]


def activate(base_path: str | Path):
    """Import the stand-ins as `folder_paths`, `comfy.*`, `comfy_api.*` and `server`, rooted at `base_path`; returns folder_paths."""
    deactivate()
    api_module()
    sys.path.insert(0, str(STUB_DIR))
    sys.modules.update(_API_CACHE)
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
