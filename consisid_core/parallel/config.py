"""How one generation is split across ranks, and the checks that make a bad layout one clear line."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from ..errors import ConsisIDError


class ParallelSetupError(ConsisIDError):
    """A parallel layout that cannot run here (degrees, world size, missing package, token counts)."""


def _cuda_device(device: str | None) -> bool:
    """Whether `device` is a CUDA device (None: whether this machine has a usable CUDA GPU)."""
    if device is not None:
        return str(device).startswith("cuda")
    import torch

    return torch.cuda.is_available()


@dataclass(frozen=True)
class ParallelConfig:
    """cfg_parallel puts the two CFG branches on two ranks; ulysses x ring ranks share the video tokens."""

    cfg_parallel: bool = False
    ulysses_degree: int = 1
    ring_degree: int = 1

    @property
    def cfg_degree(self) -> int:
        return 2 if self.cfg_parallel else 1

    @property
    def sp_degree(self) -> int:
        return self.ulysses_degree * self.ring_degree

    @property
    def world_size(self) -> int:
        return self.cfg_degree * self.sp_degree

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def describe(self) -> str:
        return f"cfg{self.cfg_degree} x ulysses{self.ulysses_degree} x ring{self.ring_degree}"

    def validate(self, world_size: int, device: str | None = None) -> None:
        """Refuse degrees that do not multiply to the number of launched processes, need a missing package, or
        ring attention where there is no CUDA (`device`, or this machine when None)."""
        for name, value in (("--ulysses", self.ulysses_degree), ("--ring", self.ring_degree)):
            if int(value) < 1:
                raise ParallelSetupError(f"{name} must be 1 or more; got {value}")
        if self.world_size != world_size:
            raise ParallelSetupError(
                f"the parallel layout {self.describe()} needs {self.world_size} processes but {world_size} were "
                f"launched: start it with `torchrun --nproc_per_node {self.world_size} -m consisid_core generate ...` "
                "or change --cfg-parallel/--ulysses/--ring"
            )
        if self.ring_degree > 1 and not _cuda_device(device):
            raise ParallelSetupError(
                "ring attention (--ring > 1) runs only on CUDA"
                + (f" but the device is '{device}'" if device else " and this machine has no usable CUDA GPU")
                + ": use --ulysses (and --cfg-parallel) instead"
            )
        if self.sp_degree > 1 and importlib.util.find_spec("yunchang") is None:
            raise ParallelSetupError(
                "sequence parallelism (--ulysses/--ring > 1) needs the optional parallel extra: "
                "`pip install xfuser` (it brings yunchang); --cfg-parallel alone needs nothing extra"
            )

    def check_tokens(self, text_len: int, tokens_per_frame: int, guidance: bool) -> None:
        """Refuse a layout that cannot split this video's tokens evenly (checked before any step runs)."""
        if self.cfg_parallel and not guidance:
            raise ParallelSetupError(
                "--cfg-parallel splits the two classifier-free-guidance branches, but guidance is off "
                "(guidance_scale <= 1): drop --cfg-parallel or raise --guidance"
            )
        sp = self.sp_degree
        if sp > 1 and tokens_per_frame % sp:
            raise ParallelSetupError(
                f"{tokens_per_frame} video tokens per frame cannot be split evenly over {sp} sequence-parallel "
                f"ranks: choose ulysses x ring among the divisors of {tokens_per_frame}"
            )
        if sp > 1 and text_len % sp:
            raise ParallelSetupError(
                f"the {text_len} text tokens cannot be split evenly over {sp} sequence-parallel ranks: "
                f"choose ulysses x ring dividing {text_len} (e.g. 2 for the released model's 226 tokens) "
                "and add --cfg-parallel for more GPUs"
            )
