"""Every choice list the nodes and the CLI offer, defined once (standard library only: nodes read them at start)."""

from __future__ import annotations

AUTO = "auto"
PRECISIONS = ("bf16", "fp16", "fp32")  # model/EVA-CLIP dtypes by name (consisid_core.runtime.DTYPES maps them)
MEMORY_MODES = ("none", "model_offload", "sequential_offload")
MEMORY_MODE_SHORT = {"none": "none", "model": "model_offload", "sequential": "sequential_offload"}  # CLI --offload
NOISE_DEVICES = ("cpu", "gpu")  # where the initial noise is drawn
ONNX_PROVIDERS = ("cpu", "cuda")  # where antelopev2 runs (the nodes show them upper-case)
VAE_TILING = ("auto", "on", "off")
FACE_SELECTIONS = ("largest", "central", "reference")  # or a 0-based face index
FACE_INDEX = "index"  # the nodes' choice that means "use the face_index input"
SCORE_PROTOCOLS = ("fixed", "consisid")  # identity metrics: fixed (default) or the paper scripts' exact quirks
WEIGHT_DTYPES = ("default", "fp8_e4m3fn", "fp8_e4m3fn_fast")  # transformer block weight storage (runtime/fp8.py)
COMPILE_CHOICES = ("off", "blocks")  # torch.compile of the transformer blocks (runtime/compile_blocks.py)
TEACACHE_MODES = ("fixed", "reference")  # engine/teacache.py
