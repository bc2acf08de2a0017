"""Ring attention without flash-attn: each K/V block through torch's efficient SDPA kernel, merged in float32.

yunchang's torch fallback hands its block merge a log-sum-exp cast to the model dtype (bf16) and, from the
efficient kernel, padded to a multiple of 32 rows (8,888 tokens per rank -> 8,896 LSE rows), so the merge fails
with a broadcast error. `ring_attention` has yunchang's `ring_attn_fn` signature and keeps the LSE exact.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

# looked up at call time, so a test can stand in for the CUDA-only kernel on the CPU
EFFICIENT_KERNEL = torch.ops.aten._scaled_dot_product_efficient_attention

BlockKernel = Callable[[Tensor, Tensor, Tensor, float], tuple[Tensor, Tensor]]


def efficient_block(q: Tensor, k: Tensor, v: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Attention of q over one K/V block, [B, S, H, D] in and out, with its log-sum-exp [B, H, S] in float32."""
    out, lse = EFFICIENT_KERNEL(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), None, True, scale=scale)[:2]
    return out.transpose(1, 2), lse[..., : q.shape[1]].float()  # the kernel pads the LSE to a multiple of 32


def merge_block(out: Tensor | None, lse: Tensor | None, block_out: Tensor,
                block_lse: Tensor) -> tuple[Tensor, Tensor]:
    """Fold one block's (output [B, S, H, D], LSE [B, H, S]) into the running float32 pair (softmax-weighted)."""
    block_out = block_out.float()
    block_lse = block_lse[..., : block_out.shape[1]].float()
    if out is None:
        return block_out, block_lse
    total = torch.logaddexp(lse, block_lse)
    weight_old = torch.exp(lse - total).transpose(1, 2).unsqueeze(-1)
    weight_new = torch.exp(block_lse - total).transpose(1, 2).unsqueeze(-1)
    return out * weight_old + block_out * weight_new, total


def ring_attention(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0, softmax_scale: float | None = None,
                   causal: bool = False, *args: Any, group: Any = None, kernel: BlockKernel = efficient_block,
                   **kwargs: Any) -> Tensor:
    """Non-causal attention of this rank's queries over every ring rank's keys and values ([B, S, H, D])."""
    from yunchang.ring.utils import RingComm

    if causal or dropout_p:
        raise ValueError("ring_attention is for inference: non-causal, no dropout")
    scale = softmax_scale if softmax_scale is not None else q.shape[-1] ** -0.5
    comm = RingComm(group)
    out = lse = None
    for step in range(comm.world_size):
        last = step + 1 == comm.world_size
        if not last:  # pass this block on while computing with it
            next_k, next_v = comm.send_recv(k), comm.send_recv(v)
            comm.commit()
        out, lse = merge_block(out, lse, *kernel(q, k, v, scale))
        if not last:
            comm.wait()
            k, v = next_k, next_v
    return out.to(q.dtype)
