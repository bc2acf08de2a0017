"""One runtime setting (device, dtypes, noise device, attention, memory mode, fp8, compile), resolved and checked once.

`resolve_runtime` is the only place that turns user choices ("auto", "bf16", "cuda:1", ...) into concrete
values and refuses combinations that cannot run, *before* any model is loaded. The engine loader, the face
model loader, the CLI and the ComfyUI loader nodes all call it, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..choices import MEMORY_MODES
from .attention import attention_problem
from .compile_blocks import compile_choice, compile_problem
from .devices import DTYPE_NAMES, RuntimeSettingError, check_noise_device, resolve_device, resolve_dtype
from .fp8 import weight_dtype_problem


@dataclass(frozen=True)
class RuntimeSetting:
    """Where and how the models run. Build it with `resolve_runtime`, not directly."""

    device: torch.device
    dtype: torch.dtype  # DiT, VAE and T5 compute dtype
    face_dtype: torch.dtype  # EVA-CLIP dtype (detector and parser always run in fp32, as the reference)
    noise_device: str = "cpu"  # "cpu": same noise everywhere; "gpu": the reference's torch.Generator("cuda")
    attention: str = "sdpa"
    memory_mode: str = "none"
    weight_dtype: str = "default"  # DiT block weights: "default" (= dtype), "fp8_e4m3fn", "fp8_e4m3fn_fast" (runtime/fp8.py)
    compile: str = "off"  # "off" or "blocks": torch.compile each transformer block (runtime/compile_blocks.py)

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, str(self.dtype))

    @property
    def face_dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.face_dtype, str(self.face_dtype))

    def with_changes(self, **changes: Any) -> "RuntimeSetting":
        """A copy with some fields changed, checked again by `resolve_runtime`."""
        fields = {
            "device": self.device, "dtype": self.dtype, "face_dtype": self.face_dtype,
            "noise_device": self.noise_device, "attention": self.attention, "memory_mode": self.memory_mode,
            "weight_dtype": self.weight_dtype, "compile": self.compile,
        }
        fields.update(changes)
        return resolve_runtime(**fields)


def resolve_runtime(
    device: Any = "auto",
    dtype: Any = "auto",
    face_dtype: Any = None,
    noise_device: str = "cpu",
    attention: str = "sdpa",
    memory_mode: str = "none",
    weight_dtype: str | None = "default",
    compile: str | bool = "off",
) -> RuntimeSetting:
    """Turn user choices into one checked RuntimeSetting; raises RuntimeSettingError naming the bad setting.

    `face_dtype` None/'same' follows the model dtype, as the reference loads EVA-CLIP in the pipeline dtype.
    """
    dev = resolve_device(device)
    model_dtype = resolve_dtype(dtype, dev)
    face = model_dtype if face_dtype in (None, "same") else resolve_dtype(face_dtype, dev, "face_dtype")
    check_noise_device(noise_device)
    if memory_mode not in MEMORY_MODES:
        raise RuntimeSettingError("memory_mode", f"memory_mode must be one of {list(MEMORY_MODES)}; got {memory_mode!r}")
    problem = attention_problem(attention, dev, model_dtype)
    if problem is not None:
        raise RuntimeSettingError("attention", problem)
    weight_dtype, compile = _check_speed_options(weight_dtype, compile, dev, memory_mode)
    return RuntimeSetting(
        device=dev, dtype=model_dtype, face_dtype=face, noise_device=noise_device, attention=attention,
        memory_mode=memory_mode, weight_dtype=weight_dtype, compile=compile,
    )


def _check_speed_options(weight_dtype: Any, compile: Any, device: torch.device, memory_mode: str) -> tuple[str, str]:
    """fp8 weight storage and compiled blocks: normalised names, or RuntimeSettingError('weight_dtype'/'compile')."""
    weight_dtype = "default" if weight_dtype is None else weight_dtype
    problem = weight_dtype_problem(weight_dtype, device)
    if problem is not None:
        raise RuntimeSettingError("weight_dtype", problem)
    compile = compile_choice(compile)
    problem = compile_problem(compile, device, memory_mode)
    if problem is not None:
        raise RuntimeSettingError("compile", problem)
    return weight_dtype, compile
