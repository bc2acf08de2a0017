"""ComfyUI nodes of the ConsisID pack: thin adapters over `consisid_core`, on ComfyUI's V3 node schema
(`comfy_api.v0_0_2`, the versioned API ComfyUI 0.8 ships).

Importing this package registers the `consisid` and `insightface` model folders when ComfyUI's
`folder_paths` is importable, and the pack's server route when ComfyUI's server is running.
ComfyUI gets the nodes through `ConsisIDExtension` (the root package's `comfy_entrypoint`).
"""

from __future__ import annotations

import logging

from comfy_api.v0_0_2 import ComfyExtension, io
from consisid_core import node_ids

from .conditioning_nodes import ConsisIDGlobalExtractor, ConsisIDTextEncode
from .face_nodes import ConsisIDFaceCropAlign, ConsisIDLandmarkRenderer, ConsisIDLocalExtractor
from .loaders import ConsisIDFaceModelsLoader, ConsisIDModelLoader
from .lora_node import ConsisIDLoRA
from .metrics_nodes import ConsisIDEvalModelsLoader, ConsisIDIdentityScore
from .parallel_node import ConsisIDParallelWorkers
from .sampling_nodes import ConsisIDDecode, ConsisIDSampler
from .speed_nodes import ConsisIDTeaCache
from .takes_nodes import ConsisIDPickTake, ConsisIDTakes

_log = logging.getLogger("ConsisID")

_NODES = (
    ConsisIDModelLoader,
    ConsisIDFaceModelsLoader,
    ConsisIDFaceCropAlign,
    ConsisIDLandmarkRenderer,
    ConsisIDGlobalExtractor,
    ConsisIDLocalExtractor,
    ConsisIDTextEncode,
    ConsisIDSampler,
    ConsisIDDecode,
    ConsisIDTeaCache,
    ConsisIDLoRA,
    ConsisIDEvalModelsLoader,
    ConsisIDIdentityScore,
    ConsisIDParallelWorkers,
    ConsisIDTakes,
    ConsisIDPickTake,
)

# id -> class and id -> display name, for tests and tools; ComfyUI takes both from each node's schema (which uses
# the same ids: consisid_core/node_ids.py, shared with the batch client).
NODES_BY_ID: dict = node_ids.registry(_NODES)
DISPLAY_NAMES: dict = {node_id: cls.DISPLAY_NAME for node_id, cls in NODES_BY_ID.items()}


class ConsisIDExtension(ComfyExtension):
    """What ComfyUI 0.8+ loads: the pack's V3 nodes (registered under their schema ids and display names)."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(_NODES)


def _register_with_comfyui() -> None:
    """Model folders and the status route, only when running inside ComfyUI (or its test stand-in)."""
    import importlib.util

    if importlib.util.find_spec("folder_paths") is None:
        return
    from . import comfy_bridge

    comfy_bridge.register_model_folders()
    try:
        from . import prompt_checks

        prompt_checks.register()  # one validation message for a wrong sampler size
    except Exception:  # a hook problem must never hide the nodes
        _log.exception("ConsisID: the size check could not be registered")
    try:
        from .server_routes import register_routes
    except ImportError:  # the route module is optional
        return
    try:
        register_routes()
    except Exception:  # a route problem must never hide the nodes
        _log.exception("ConsisID: the /consisid/models route could not be registered")


_register_with_comfyui()
