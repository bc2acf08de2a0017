"""This rank's share of a step: which CFG branch and which video/text tokens, and how to put them back."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from .config import ParallelConfig


@dataclass
class ParallelPlan:
    """Process groups and ranks of one parallel layout; the block loop calls `shard_*` and `gather_*`.

    `attention_fn` is the sequence-parallel attention (q, k, v as [B, heads, S_local, D]) or None."""

    config: ParallelConfig
    rank: int
    world_size: int
    cfg_rank: int
    sp_rank: int
    cfg_group: Any = None
    sp_group: Any = None
    attention_fn: Callable | None = field(default=None, repr=False)

    @property
    def is_writer(self) -> bool:
        """Rank 0 writes outputs; every rank computes the same final latents."""
        return self.rank == 0

    # ---- CFG branches -----------------------------------------------------------------------------
    def shard_batch(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """This rank's CFG branch of each [2, ...] tensor (batch order: negative, positive)."""
        if self.config.cfg_degree == 1:
            return tensors
        return tuple(t.chunk(self.config.cfg_degree)[self.cfg_rank] for t in tensors)

    def gather_batch(self, tensor: torch.Tensor) -> torch.Tensor:
        """Both CFG branches back in batch order, on every rank."""
        if self.config.cfg_degree == 1:
            return tensor
        return _all_gather_cat(tensor, self.cfg_group, self.config.cfg_degree, dim=0)

    # ---- tokens ---------------------------------------------------------------------------------
    def shard_tokens(self, video: torch.Tensor, text: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's contiguous slice of every frame's tokens ([B, F*N, D] -> [B, F*N/sp, D]) and of the text."""
        sp = self.config.sp_degree
        if sp == 1:
            return video, text
        b, _, d = video.shape
        per_frame = video.reshape(b, num_frames, -1, d).chunk(sp, dim=2)[self.sp_rank]
        return per_frame.reshape(b, -1, d).contiguous(), text.chunk(sp, dim=1)[self.sp_rank].contiguous()

    def shard_rotary(self, rotary, num_frames: int):
        """Rotary cos/sin tables sliced like the video tokens."""
        sp = self.config.sp_degree
        if sp == 1 or rotary is None:
            return rotary

        def piece(freqs: torch.Tensor) -> torch.Tensor:
            dim = freqs.shape[-1]
            return freqs.reshape(num_frames, -1, dim).chunk(sp, dim=1)[self.sp_rank].reshape(-1, dim).contiguous()

        return tuple(piece(f) for f in rotary)

    def gather_tokens(self, video: torch.Tensor, text: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Every rank's token slices back in order, on every rank."""
        sp = self.config.sp_degree
        if sp == 1:
            return video, text
        b, _, d = video.shape
        frames = _all_gather_cat(video.reshape(b, num_frames, -1, d).contiguous(), self.sp_group, sp, dim=2)
        return frames.reshape(b, -1, d), _all_gather_cat(text.contiguous(), self.sp_group, sp, dim=1)

    @contextlib.contextmanager
    def attention(self, transformer) -> Iterator[None]:
        """While sampling, the self-attention of every block runs sequence-parallel (processors only, blocks untouched)."""
        if self.attention_fn is None:
            yield
            return
        from ..engine.joint_attention import joint_attention

        with joint_attention(transformer, self.attention_fn):
            yield

    def close(self) -> None:
        """Wait for every rank, then leave the process group (a rank that exits with the group alive can abort)."""
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def agree(self, flag: bool) -> bool:
        """True on every rank when any rank says True (e.g. a cancel request seen by rank 0 only)."""
        if self.world_size == 1:
            return flag
        import torch.distributed as dist

        value = torch.tensor([1.0 if flag else 0.0], device=_group_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)


def _group_device() -> torch.device:
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _all_gather_cat(tensor: torch.Tensor, group, size: int, dim: int) -> torch.Tensor:
    import torch.distributed as dist

    parts = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(parts, tensor, group=group)
    return torch.cat(parts, dim=dim)
