"""The transformer's self-attention with a chosen backend: an SDPA kernel pinned, or our joint processor.

The SDPA variants keep diffusers' own attention processor and only pin the kernel. The optional
libraries use our processor, which computes the CogVideoX joint text+video attention the same way
(q/k norm, rotary embedding on the video tokens) but calls the attention function that
consisid_core.runtime.attention registers for the backend.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from ..runtime.attention import ATTENTION_FUNCTIONS, SDPA_KERNELS


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
