"""Devices, dtypes and noise generators: user choices ("auto", "bf16", "cuda:1", ...) turned into torch values.

Every refusal is a RuntimeSettingError naming the setting, raised before any model loads.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import choices
from ..errors import UnsupportedInputError

DTYPES = dict(zip(choices.PRECISIONS, (torch.bfloat16, torch.float16, torch.float32)))  # names: consisid_core.choices
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
NOISE_DEVICES = choices.NOISE_DEVICES
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


class RuntimeSettingError(UnsupportedInputError):
    """A runtime choice that cannot run here; `setting` names it (e.g. 'attention'), the message says what to pick."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


def noise_generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch generator on `device` seeded with `seed` (the one place generators are made)."""
    return torch.Generator(device).manual_seed(int(seed))


def generator_device(noise_device: str, engine_device: torch.device) -> torch.device:
    """The device the initial/scheduler noise is drawn on: the CPU, or the engine's accelerator ('gpu')."""
    check_noise_device(noise_device)
    return torch.device(engine_device) if noise_device == "gpu" else torch.device("cpu")


def check_noise_device(noise_device: str) -> str:
    """`noise_device` itself when it is 'cpu' or 'gpu', else RuntimeSettingError('noise_device')."""
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
