"""Process groups for a parallel layout: CFG groups across branches, sequence groups within a branch.

Ranks are laid out as rank = cfg_rank * sp_degree + sp_rank (the CFG split outermost, as xDiT does), so
each sequence group is a contiguous range of ranks, which is what yunchang's USP groups expect.
"""

from __future__ import annotations

import os

import torch

from .config import ParallelConfig, ParallelSetupError
from .plan import ParallelPlan


def init_groups(config: ParallelConfig, device: str = "cuda") -> ParallelPlan:
    """Join the job torchrun started (gloo on CPU, nccl on CUDA) and build this rank's plan."""
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ParallelSetupError(
            "parallel generation must be launched by torchrun: "
            f"`torchrun --nproc_per_node {config.world_size} -m consisid_core generate ... "
            f"{'--cfg-parallel ' if config.cfg_parallel else ''}--ulysses {config.ulysses_degree} --ring {config.ring_degree}`"
        )
    config.validate(int(os.environ["WORLD_SIZE"]), str(device))
    on_cuda = str(device).startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        raise ParallelSetupError("--device cuda was asked for a parallel run, but this torch has no usable CUDA: "
                                 "use --device cpu (gloo, for testing) or a CUDA build of torch")
    if on_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if on_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    sp = config.sp_degree
    cfg_rank, sp_rank = divmod(rank, sp)
    cfg_group = sp_group = None
    for branch in range(config.cfg_degree):  # every rank must create every group, in the same order
        group = dist.new_group(list(range(branch * sp, (branch + 1) * sp)))
        if branch == cfg_rank:
            sp_group = group
    for position in range(sp):
        group = dist.new_group(list(range(position, world, sp)))
        if position == sp_rank:
            cfg_group = group
    attention_fn = _usp_attention(config, rank, world, on_cuda) if sp > 1 else None
    return ParallelPlan(config, rank, world, cfg_rank, sp_rank, cfg_group, sp_group, attention_fn)


def _usp_attention(config: ParallelConfig, rank: int, world: int, on_cuda: bool):
    """yunchang's USP attention (Ulysses all-to-all around ring attention), adapted to [B, heads, S, D]."""
    import importlib.util

    from yunchang import LongContextAttention, set_seq_parallel_pg
    from yunchang.kernels import AttnType

    if config.ring_degree > 1 and not on_cuda:
        raise ParallelSetupError(
            "ring attention (--ring > 1) runs only on CUDA: yunchang's CPU attention returns no log-sum-exp to "
            "merge ring blocks with; use --ulysses on CPU"
        )
    set_seq_parallel_pg(config.ulysses_degree, config.ring_degree, rank, world)
    if not on_cuda:
        kind = AttnType.TORCH_MATH
    elif importlib.util.find_spec("flash_attn") is not None:
        kind = AttnType.FA
    else:
        kind = AttnType.TORCH_EFFICIENT
    layer = LongContextAttention(ring_impl_type="basic", attn_type=kind)
    if kind is AttnType.TORCH_EFFICIENT and config.ring_degree > 1:
        from .ring_attention import ring_attention  # yunchang's torch ring merge gets a bf16, padded LSE

        layer.ring_attn_fn = ring_attention

    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = layer(q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous(),
                    causal=False)
        return out.transpose(1, 2)

    return attention
