"""One runtime setting (device, dtypes, noise device, attention, memory mode), resolved and checked once.

`resolve_runtime` is the only place that turns user choices ("auto", "bf16", "cuda:1", ...) into concrete
values and refuses combinations that cannot run, *before* any model is loaded. The engine loader, the face
model loader, the CLI and the ComfyUI loader nodes all call it, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from . import choices
from .errors import UnsupportedInputError

DTYPES = dict(zip(choices.PRECISIONS, (torch.bfloat16, torch.float16, torch.float32)))  # names: consisid_core.choices
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
NOISE_DEVICES = choices.NOISE_DEVICES
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
# attention backends that only exist as CUDA kernels, and those that only take half-precision inputs
CUDA_ONLY_ATTENTION = ("sdpa_flash", "sdpa_efficient", "sdpa_cudnn", "sageattention", "flash_attn")
HALF_ONLY_ATTENTION = ("sdpa_flash", "sdpa_cudnn", "sageattention", "flash_attn")
CPU_ATTENTION = ("sdpa", "sdpa_math")


class RuntimeSettingError(UnsupportedInputError):
    """A runtime choice that cannot run here; `setting` names it (e.g. 'attention'), the message says what to pick."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class RuntimeSetting:
    """Where and how the models run. Build it with `resolve_runtime`, not directly."""

    device: torch.device
    dtype: torch.dtype  # DiT, VAE and T5 compute dtype
    face_dtype: torch.dtype  # EVA-CLIP dtype (detector and parser always run in fp32, as the reference)
    noise_device: str = "cpu"  # "cpu": same noise everywhere; "gpu": the reference's torch.Generator("cuda")
    attention: str = "sdpa"
    memory_mode: str = "none"
    weight_dtype: str = "default"  # DiT block weights: "default" (= dtype), "fp8_e4m3fn", "fp8_e4m3fn_fast" (engine/fp8.py)
    compile: str = "off"  # "off" or "blocks": torch.compile each transformer block (engine/compile_blocks.py)

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


def noise_generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch generator on `device` seeded with `seed` (the one place generators are made)."""
    return torch.Generator(device).manual_seed(int(seed))


def generator_device(noise_device: str, engine_device: torch.device) -> torch.device:
    """The device the initial/scheduler noise is drawn on: the CPU, or the engine's accelerator ('gpu')."""
    check_noise_device(noise_device)
    return torch.device(engine_device) if noise_device == "gpu" else torch.device("cpu")


def check_noise_device(noise_device: str) -> str:
    if noise_device not in NOISE_DEVICES:
        raise RuntimeSettingError(
            "noise_device",
            f"noise_device must be 'cpu' (the same noise on every machine) or 'gpu' (the reference's CUDA "
            f"generator); got {noise_device!r}",
        )
    return noise_device


def resolve_device(device: Any = "auto") -> torch.device:
    """'auto' -> the first CUDA GPU if torch sees one, else the CPU; anything unusable here is refused."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise RuntimeSettingError("device", f"device {device!r} is not a device torch knows; use 'auto', 'cpu' or 'cuda'") from None
    if dev.type not in DEVICE_TYPES:
        raise RuntimeSettingError("device", f"device {device!r} is not supported; use 'auto', 'cpu' or 'cuda'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = " (this torch is a CPU-only build)" if torch.version.cuda is None else ""
            raise RuntimeSettingError(
                "device", f"device {device!r} was requested but torch sees no CUDA GPU{why}; use device 'cpu' (or 'auto')"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeSettingError(
                "device", f"device {device!r} does not exist: torch sees {torch.cuda.device_count()} CUDA GPU(s); "
                f"use 'cuda:0'..'cuda:{torch.cuda.device_count() - 1}'"
            )
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RuntimeSettingError("device", f"device {device!r} was requested but MPS is not available; use 'cpu'")
    elif dev.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise RuntimeSettingError("device", f"device {device!r} was requested but torch sees no XPU; use 'cpu'")
    return dev


def resolve_dtype(dtype: Any, device: torch.device, setting: str = "dtype") -> torch.dtype:
    """'auto'/None -> bf16 on CUDA (fp16 where bf16 is unsupported), fp16 on MPS, fp32 on the CPU."""
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else torch.float32
    if isinstance(dtype, torch.dtype) and dtype in DTYPE_NAMES:
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise RuntimeSettingError(setting, f"{setting} must be one of {['auto', *DTYPES]} or a torch dtype; got {dtype!r}")


def attention_problem(attention: str, device: torch.device, dtype: torch.dtype) -> str | None:
    """Why `attention` cannot run on `device` in `dtype` (one line with what to choose), or None."""
    from .engine.attention import KNOWN_BACKENDS, available_backends, backend_import_error, backend_kernel_error

    if attention not in KNOWN_BACKENDS:
        return f"attention must be one of {available_backends()}; got {attention!r}"
    error = backend_import_error(attention)
    if error is not None:
        return f"attention '{attention}' is not usable here ({error}); choose 'sdpa' or reinstall it for this torch"
    if attention in CUDA_ONLY_ATTENTION and device.type != "cuda":
        return f"attention '{attention}' needs a CUDA GPU but the device is '{device}'; choose one of {list(CPU_ATTENTION)}"
    if attention in HALF_ONLY_ATTENTION and dtype not in (torch.float16, torch.bfloat16):
        return (f"attention '{attention}' runs only in bf16/fp16 but the precision is "
                f"{DTYPE_NAMES.get(dtype, dtype)}; choose precision bf16 (or fp16), or attention 'sdpa'")
    if attention != "sdpa" and device.type == "cuda":
        error = backend_kernel_error(attention, device, dtype)
        if error is not None:
            return f"attention '{attention}' does not run on this GPU with this torch ({error}); choose 'sdpa'"
    return None


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
    from .engine.offload import MEMORY_MODES

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
    from .engine.compile_blocks import compile_choice, compile_problem
    from .engine.fp8 import weight_dtype_problem

    weight_dtype = "default" if weight_dtype is None else weight_dtype
    problem = weight_dtype_problem(weight_dtype, device)
    if problem is not None:
        raise RuntimeSettingError("weight_dtype", problem)
    compile = compile_choice(compile)
    problem = compile_problem(compile, device, memory_mode)
    if problem is not None:
        raise RuntimeSettingError("compile", problem)
    return weight_dtype, compile


__all__ = [
    "RuntimeSetting", "RuntimeSettingError", "resolve_runtime", "resolve_device", "resolve_dtype",
    "noise_generator", "generator_device", "NOISE_DEVICES", "DTYPES",
]
