"""Import the repository as ComfyUI imports a custom node folder, and reach its node modules."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-ConsisID"  # the folder name users clone into ComfyUI/custom_nodes


def ensure_comfy_api() -> None:
    """The node modules import ComfyUI's `comfy_api` (the V3 schema) when imported: without a ComfyUI, the test
    stand-in's (it holds no state, so it may stay importable for the whole session)."""
    if "comfy_api" in sys.modules:
        return
    import comfy_stub

    for name in comfy_stub.API_MODULES:
        sys.modules[name] = comfy_stub.api_module(name)


def import_pack():
    """The pack package (its __init__.py run under the folder's name, like ComfyUI's load_custom_node)."""
    ensure_comfy_api()
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(PACK_NAME, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[PACK_NAME]
        raise
    return module


def pack_module(name: str):
    """A submodule of the imported pack, e.g. pack_module("nodes.model_cache")."""
    import_pack()
    ensure_comfy_api()
    return importlib.import_module(f"{PACK_NAME}.{name}")
