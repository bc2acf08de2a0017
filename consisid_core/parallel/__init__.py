"""One video on several processes: CFG branches and video tokens split across ranks (xDiT's USP layout).

`ParallelConfig` says how; `init_parallel` builds the process groups once per process; the resulting
`ParallelPlan` is handed to the engine and used by the one block loop (`transformer_forward`) to shard
tokens before the blocks and gather them after. Sequence-parallel attention is yunchang's USP
(the attention layer xfuser itself runs); the CFG split needs only torch.distributed.
For the canvas, `pool.ParallelPool` keeps such ranks alive as worker processes (`worker_launch` starts them as
fresh interpreters running `worker_main`, which loads only the transformer: `worker_engine`).
"""

from .config import ParallelConfig, ParallelSetupError
from .plan import ParallelPlan

__all__ = ["ParallelConfig", "ParallelPlan", "ParallelSetupError", "init_parallel"]


def init_parallel(config: ParallelConfig, device: str = "cuda") -> ParallelPlan:
    """Start torch.distributed from torchrun's environment and build this rank's plan."""
    from .groups import init_groups

    return init_groups(config, device)
