"""Attention backends: which exist, which run here, and their attention functions.

PyTorch SDPA (with a kernel choice) or, when installed, SageAttention / FlashAttention. `attention_problem`
says why a backend cannot run on a device in a dtype; the engine's joint processor (engine/joint_attention.py)
calls the functions registered here.
"""

from __future__ import annotations

import importlib.util
from typing import Callable

import torch
import torch.nn.functional as F

from .devices import DTYPE_NAMES

SDPA_KERNELS = {"sdpa_flash": "FLASH_ATTENTION", "sdpa_efficient": "EFFICIENT_ATTENTION", "sdpa_math": "MATH",
                "sdpa_cudnn": "CUDNN_ATTENTION"}
OPTIONAL_BACKENDS = {"sageattention": "sageattention", "flash_attn": "flash_attn"}


KNOWN_BACKENDS = ("sdpa", *SDPA_KERNELS, *OPTIONAL_BACKENDS)
# attention backends that only exist as CUDA kernels, and those that only take half-precision inputs
CUDA_ONLY_ATTENTION = ("sdpa_flash", "sdpa_efficient", "sdpa_cudnn", "sageattention", "flash_attn")
HALF_ONLY_ATTENTION = ("sdpa_flash", "sdpa_cudnn", "sageattention", "flash_attn")
CPU_ATTENTION = ("sdpa", "sdpa_math")
_IMPORT_ERRORS: dict[str, str | None] = {}


def backend_import_error(name: str) -> str | None:
    """Why an optional backend cannot be imported (not installed, or a wheel built for another torch), or None."""
    module = OPTIONAL_BACKENDS.get(name)
    if module is None:
        return None
    if name not in _IMPORT_ERRORS:
        if importlib.util.find_spec(module) is None:
            _IMPORT_ERRORS[name] = f"the {module} package is not installed"
        else:
            try:
                importlib.import_module(module)
                _IMPORT_ERRORS[name] = None
            except Exception as exc:  # a wheel for another torch/CUDA fails with OSError/ImportError/RuntimeError
                first_line = (str(exc).splitlines() or [""])[0][:160]
                _IMPORT_ERRORS[name] = f"importing {module} failed: {type(exc).__name__}: {first_line}"
    return _IMPORT_ERRORS[name]


def available_backends() -> list[str]:
    """Backends usable in this environment (optional ones only when they import), default first."""
    return [name for name in KNOWN_BACKENDS if backend_import_error(name) is None]


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)


def _sage(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from sageattention import sageattn

    return sageattn(q, k, v, tensor_layout="HND", is_causal=False)


def _flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from flash_attn import flash_attn_func

    return flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


ATTENTION_FUNCTIONS: dict[str, Callable] = {"sdpa_processor": _sdpa, "sageattention": _sage, "flash_attn": _flash}
_KERNEL_ERRORS: dict[tuple, str | None] = {}


def _probe_inputs(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    return tuple(torch.zeros(1, 2, 16, 64, device=device, dtype=dtype) for _ in range(3))


def backend_kernel_error(name: str, device: torch.device, dtype: torch.dtype) -> str | None:
    """Run backend `name` once on tiny inputs on `device` (cached): why its kernel fails here, or None.

    Catches what importing cannot: a wheel or kernel built for another GPU architecture or CUDA version.
    """
    key = (name, str(device), dtype)
    if key not in _KERNEL_ERRORS:
        try:
            q, k, v = _probe_inputs(device, dtype)
            if name in SDPA_KERNELS:
                from torch.nn.attention import SDPBackend, sdpa_kernel

                with sdpa_kernel(getattr(SDPBackend, SDPA_KERNELS[name])):
                    _sdpa(q, k, v)
            elif name in ATTENTION_FUNCTIONS:
                ATTENTION_FUNCTIONS[name](q, k, v)
            _KERNEL_ERRORS[key] = None
        except Exception as exc:  # RuntimeError from CUDA, or anything a broken extension raises
            _KERNEL_ERRORS[key] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
    return _KERNEL_ERRORS[key]


def attention_problem(attention: str, device: torch.device, dtype: torch.dtype) -> str | None:
    """Why `attention` cannot run on `device` in `dtype` (one line with what to choose), or None."""
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
