"""ComfyUI nodes of the ConsisID pack: thin adapters over `consisid_core`.

Importing this package registers the `consisid` and `insightface` model folders when ComfyUI's
`folder_paths` is importable, and the pack's server route when ComfyUI's server is running.
"""

from __future__ import annotations

import logging

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

NODE_CLASS_MAPPINGS: dict = node_ids.registry(_NODES)  # ids shared with the batch client (consisid_core/node_ids.py)
NODE_DISPLAY_NAME_MAPPINGS: dict = {cls.__name__: cls.DISPLAY_NAME for cls in _NODES}


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
