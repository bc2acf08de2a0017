"""Attention backends: PyTorch SDPA (with a kernel choice) or, when installed, SageAttention / FlashAttention.

The SDPA variants keep diffusers' own attention processor and only pin the kernel. The optional
libraries use our processor, which computes the CogVideoX joint text+video attention the same way
(q/k norm, rotary embedding on the video tokens) but calls the chosen attention function.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Callable

import torch
import torch.nn.functional as F

SDPA_KERNELS = {"sdpa_flash": "FLASH_ATTENTION", "sdpa_efficient": "EFFICIENT_ATTENTION", "sdpa_math": "MATH",
                "sdpa_cudnn": "CUDNN_ATTENTION"}
OPTIONAL_BACKENDS = {"sageattention": "sageattention", "flash_attn": "flash_attn"}


KNOWN_BACKENDS = ("sdpa", *SDPA_KERNELS, *OPTIONAL_BACKENDS)
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


class JointAttentionProcessor:
    """CogVideoX/ConsisID joint attention over [text | video] tokens with a pluggable attention function."""

    def __init__(self, attention_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.attention_fn = attention_fn

    def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask=None, image_rotary_emb=None):
        from diffusers.models.embeddings import apply_rotary_emb

        if attention_mask is not None:
            raise ValueError("ConsisID attention does not use masks")
        text_len = encoder_hidden_states.size(1)
        tokens = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        batch = tokens.shape[0]

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)

        q, k, v = heads(attn.to_q(tokens)), heads(attn.to_k(tokens)), heads(attn.to_v(tokens))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if image_rotary_emb is not None:
            q[:, :, text_len:] = apply_rotary_emb(q[:, :, text_len:], image_rotary_emb)
            if not attn.is_cross_attention:
                k[:, :, text_len:] = apply_rotary_emb(k[:, :, text_len:], image_rotary_emb)
        out = self.attention_fn(q, k, v)
        out = out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[-1]).to(tokens.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        return out[:, text_len:], out[:, :text_len]


def _attention_modules(transformer):
    return [block.attn1 for block in transformer.transformer_blocks]


@contextlib.contextmanager
def attention_backend(transformer, name: str):
    """Within the block, the transformer's self-attention uses backend `name`."""
    if name == "sdpa":
        yield
        return
    if name in SDPA_KERNELS:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(getattr(SDPBackend, SDPA_KERNELS[name])):
            yield
        return
    with joint_attention(transformer, ATTENTION_FUNCTIONS[name]):
        yield


@contextlib.contextmanager
def joint_attention(transformer, attention_fn: Callable):
    """Within the block, every block's self-attention runs our joint processor with `attention_fn`
    (only the processors change: the blocks, and the face injections between them, stay as they are)."""
    modules = _attention_modules(transformer)
    saved = [m.processor for m in modules]
    processor = JointAttentionProcessor(attention_fn)
    for m in modules:
        m.processor = processor
    try:
        yield
    finally:
        for m, p in zip(modules, saved):
            m.processor = p
