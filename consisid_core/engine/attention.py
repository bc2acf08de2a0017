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


def available_backends() -> list[str]:
    """Backends usable in this environment, default first."""
    names = ["sdpa", *SDPA_KERNELS]
    names += [name for name, module in OPTIONAL_BACKENDS.items() if importlib.util.find_spec(module) is not None]
    return names


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)


def _sage(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from sageattention import sageattn

    return sageattn(q, k, v, tensor_layout="HND", is_causal=False)


def _flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from flash_attn import flash_attn_func

    return flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


ATTENTION_FUNCTIONS: dict[str, Callable] = {"sdpa_processor": _sdpa, "sageattention": _sage, "flash_attn": _flash}


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
    modules = _attention_modules(transformer)
    saved = [m.processor for m in modules]
    processor = JointAttentionProcessor(ATTENTION_FUNCTIONS[name])
    for m in modules:
        m.processor = processor
    try:
        yield
    finally:
        for m, p in zip(modules, saved):
            m.processor = p
