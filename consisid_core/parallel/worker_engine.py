"""What a parallel worker loads: the transformer and scheduler only (the caller encodes text and decodes).

`load_denoiser` builds an engine that can `denoise` and carry LoRAs, with the runtime's dtype, fp8 weight
storage and compiled blocks, but no T5 and no VAE. `describe` is the worker's self-report (tests, logs);
`estimate_bytes` is the device memory one rank's weights take, for ComfyUI's memory manager.
"""

from __future__ import annotations

import gc
import json
import os
import struct
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from ..runtime import RuntimeSetting


def load_denoiser(path: str | Path, runtime: RuntimeSetting):
    """A ConsisIDEngine with only the transformer (plus scheduler and model info) on `runtime`'s settings."""
    from diffusers import CogVideoXDPMScheduler, ConsisIDTransformer3DModel

    from ..catalog import HF_URL
    from ..runtime.compile_blocks import compile_blocks
    from ..engine.engine import ConsisIDEngine
    from ..engine.files import read_config, resolve_model_folder, resolve_single_file
    from ..runtime.fp8 import apply_weight_dtype
    from ..model_info import ModelInfo
    from ..runtime.offload import Placement
    from ..engine.weights import build_model
    from ..errors import ModelFilesError

    path = Path(path).expanduser()
    files = resolve_single_file(path) if path.is_file() else resolve_model_folder(path)
    t_config = read_config(files.transformer.config)
    transformer = build_model(ConsisIDTransformer3DModel, t_config, files.transformer.weights, runtime.dtype,
                              "transformer", f"{HF_URL}/tree/main/transformer")
    if not getattr(transformer, "is_train_face", False):
        raise ModelFilesError(f"{files.transformer.config} has is_train_face=false: not a ConsisID checkpoint")
    compile_blocks(apply_weight_dtype(transformer, runtime.weight_dtype), runtime.compile)
    scheduler = CogVideoXDPMScheduler.from_config(read_config(files.scheduler_config))
    placement = Placement(runtime.device, runtime.memory_mode)
    placement.install(transformer)
    info = ModelInfo.from_configs(dict(transformer.config), read_config(files.vae.config))
    return ConsisIDEngine(transformer=transformer, vae=None, text_encoder=None, tokenizer=None, scheduler=scheduler,
                          info=info, placement=placement, dtype=runtime.dtype, source=str(path),
                          attention=runtime.attention, runtime=runtime)


def describe(engine) -> dict[str, Any]:
    """What this worker process holds and runs with, read from the live objects (not from the settings asked for)."""
    from ..runtime.fp8 import FP8Linear

    transformer = engine.transformer
    blocks = list(transformer.transformer_blocks)
    with warnings.catch_warnings():  # isinstance() touches deprecated torch.distributed objects
        warnings.simplefilter("ignore")
        live = [type(o).__name__ for o in gc.get_objects() if isinstance(o, torch.nn.Module)]
    return {
        "pid": os.getpid(),
        "main": getattr(sys.modules.get("__main__"), "__file__", None),
        "sys_path": list(sys.path),
        "device": str(engine.device),
        "dtype": str(engine.dtype).replace("torch.", ""),
        "weight_dtype": engine.runtime.weight_dtype,
        "compile": engine.runtime.compile,
        "fp8_layers": sum(isinstance(m, FP8Linear) for m in transformer.modules()),
        "compiled_blocks": sum(getattr(b, "_compiled_call_impl", None) is not None for b in blocks),
        "loras": {name: (Path(p).name, s) for name, (p, s) in engine.loras.items()},
        "text_encoders": live.count("T5EncoderModel"),
        "vaes": live.count("AutoencoderKLCogVideoX"),
        "has_text_encoder": engine.text_encoder is not None,
        "has_vae": engine.vae is not None,
    }


def estimate_bytes(path: str | Path, precision_bytes: int, weight_dtype: str = "default") -> int:
    """Device bytes of one rank's transformer: every tensor at the model dtype, block linears at 1 byte in fp8."""
    folder = Path(path)
    files = [folder] if folder.is_file() else sorted((folder / "transformer").glob("*.safetensors"))
    total = 0
    for file in files:
        for name, shape in _shapes(file):
            count = 1
            for size in shape:
                count *= int(size)
            fp8 = weight_dtype != "default" and "transformer_blocks." in name and name.endswith(".weight") \
                and len(shape) == 2 and ".norm" not in name
            total += count * (1 if fp8 else precision_bytes)
    return total


def _shapes(file: Path) -> list[tuple[str, list[int]]]:
    """(name, shape) of every tensor in a safetensors file, from its JSON header only."""
    try:
        with open(file, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return []
    return [(k, v["shape"]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
