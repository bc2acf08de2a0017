"""ComfyUI entry point of the ConsisID node pack (V3: `comfy_entrypoint`, ComfyUI 0.8 or later).

ComfyUI imports this folder as a package. We make the bundled `consisid_core` importable under its
own name (without putting the pack folder on sys.path, which would shadow ComfyUI's `nodes`), then
export `comfy_entrypoint`, which gives ComfyUI the pack's V3 nodes, and the web folder. There is deliberately
no NODE_CLASS_MAPPINGS here: ComfyUI reads that V1 mapping in preference to `comfy_entrypoint`.
A broken optional dependency must never make the whole pack fail to import: node modules import heavy
libraries only when a node runs, and a pack that cannot load logs why and offers no nodes.
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


WEB_DIRECTORY = "./web"
_nodes = None  # the pack's `nodes` package once it imported

try:
    _ensure_core_importable()
    from . import nodes as _nodes
except ImportError as exc:  # pragma: no cover - logged for the user, never fatal for ComfyUI
    if (exc.name or "").split(".")[0] == "comfy_api":
        # inside a ComfyUI older than 0.8 say so; imported elsewhere (a test runner, a tool) there is nothing to fix
        inside_comfyui = importlib.util.find_spec("folder_paths") is not None
        (_log.error if inside_comfyui else _log.debug)(
            "ConsisID: the node pack needs ComfyUI 0.8 or later (its V3 node API comfy_api.v0_0_2 is missing: %s); "
            "update ComfyUI. Its nodes are unavailable", exc)
    else:
        _log.exception("ConsisID: the node pack could not be loaded; its nodes are unavailable")
except Exception:  # pragma: no cover - logged for the user, never fatal for ComfyUI
    _log.exception("ConsisID: the node pack could not be loaded; its nodes are unavailable")


def comfy_entrypoint():
    """ComfyUI's V3 entry point: the pack's ComfyExtension (one offering no nodes when the pack failed to load)."""
    if _nodes is not None:
        return _nodes.ConsisIDExtension()
    from comfy_api.v0_0_2 import ComfyExtension

    class _Unavailable(ComfyExtension):
        async def get_node_list(self) -> list:
            return []

    return _Unavailable()


__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
