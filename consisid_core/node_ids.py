"""Node ids (ComfyUI class_type names) of the pack, defined once: nodes/ registers its classes through
`registry` (ComfyUI gets them through the pack's `comfy_entrypoint`), and code outside nodes/ (the batch client patching API workflows) refers to these constants.

Ids are part of every saved workflow: never rename one. A new node only needs its class in nodes/__init__.py;
add it here too when code outside nodes/ must find it (e.g. append to OVERRIDE_SEARCH_ORDER so bare batch
override keys reach its inputs).
"""

from __future__ import annotations

from typing import Iterable

MODEL_LOADER = "ConsisIDModelLoader"
FACE_MODELS_LOADER = "ConsisIDFaceModelsLoader"
FACE_CROP_ALIGN = "ConsisIDFaceCropAlign"
LANDMARK_RENDERER = "ConsisIDLandmarkRenderer"
GLOBAL_EXTRACTOR = "ConsisIDGlobalExtractor"
LOCAL_EXTRACTOR = "ConsisIDLocalExtractor"
TEXT_ENCODE = "ConsisIDTextEncode"
SAMPLER = "ConsisIDSampler"
DECODE = "ConsisIDDecode"
TEACACHE = "ConsisIDTeaCache"
LORA = "ConsisIDLoRA"
PARALLEL_WORKERS = "ConsisIDParallelWorkers"
TAKES = "ConsisIDTakes"  # several seeds of one request (consisid_core.takes)
PICK_TAKE = "ConsisIDPickTake"  # ranks the takes, keeps the best
EVAL_MODELS_LOADER = "ConsisIDEvalModelsLoader"  # the paper's scoring models
IDENTITY_SCORE = "ConsisIDIdentityScore"  # FaceSim-Arc/Cur, CLIPScore, FID of one video

# Widget defaults of the TeaCache node: the node declares them from here, and the batch `teacache` override
# fills a node it adds with them (one home, so the two never drift apart).
TEACACHE_DEFAULTS: dict = {"threshold": 0.15, "mode": "fixed", "start_step": 0, "end_step": 0,
                           "offload_residuals": False}

# Nodes whose inputs a bare batch override key (`steps`, `cfg`, `face_scale`...) is looked for in, in this order.
OVERRIDE_SEARCH_ORDER: list[str] = [
    SAMPLER, TEXT_ENCODE, DECODE, LOCAL_EXTRACTOR, GLOBAL_EXTRACTOR, FACE_CROP_ALIGN, MODEL_LOADER, FACE_MODELS_LOADER,
]

# The generation nodes every shipped workflow shows; these and OPTIONAL must be registered by nodes/ (`registry`).
REQUIRED: tuple[str, ...] = (
    MODEL_LOADER, FACE_MODELS_LOADER, FACE_CROP_ALIGN, LANDMARK_RENDERER, GLOBAL_EXTRACTOR, LOCAL_EXTRACTOR,
    TEXT_ENCODE, SAMPLER, DECODE,
)
# Optional nodes that code outside nodes/ adds to workflows (batch overrides): registered too, in no workflow by default.
OPTIONAL: tuple[str, ...] = (TEACACHE, LORA, PARALLEL_WORKERS)


def registry(classes: Iterable[type]) -> dict[str, type]:
    """Node id -> class for the given V3 node classes (id = class name, as each schema's node_id); raises if an id
    defined here has no class."""
    mapping = {cls.__name__: cls for cls in classes}
    missing = [node_id for node_id in (*REQUIRED, *OPTIONAL, *OVERRIDE_SEARCH_ORDER) if node_id not in mapping]
    if missing:
        raise ImportError(f"ConsisID nodes: no node class registered for {', '.join(dict.fromkeys(missing))} "
                          "(consisid_core/node_ids.py names them; rename the class back or update the ids)")
    return mapping
