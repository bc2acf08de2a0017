"""ComfyUI entry point of the ConsisID node pack.

ComfyUI imports this folder as a package. We make the bundled `consisid_core` importable under its
own name (without putting the pack folder on sys.path, which would shadow ComfyUI's `nodes`), then
export the node mappings. A broken optional dependency must never make the whole pack fail to import:
node modules import heavy libraries only when a node runs.
"""

import importlib.util
import logging
import os
import sys

_PACK_DIR = os.path.dirname(os.path.abspath(__file__))
_log = logging.getLogger("ConsisID")


def _ensure_core_importable() -> None:
    if "consisid_core" in sys.modules:
        return
    core_dir = os.path.join(_PACK_DIR, "consisid_core")
    spec = importlib.util.spec_from_file_location(
        "consisid_core", os.path.join(core_dir, "__init__.py"), submodule_search_locations=[core_dir]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["consisid_core"] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules["consisid_core"]
        raise


NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
WEB_DIRECTORY = "./web"

try:
    _ensure_core_importable()
    from .nodes import NODE_CLASS_MAPPINGS as _classes, NODE_DISPLAY_NAME_MAPPINGS as _names

    NODE_CLASS_MAPPINGS.update(_classes)
    NODE_DISPLAY_NAME_MAPPINGS.update(_names)
except Exception:  # pragma: no cover - logged for the user, never fatal for ComfyUI
    _log.exception("ConsisID: the node pack could not be loaded; its nodes are unavailable")

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
