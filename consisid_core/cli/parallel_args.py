"""CLI options for one video on several processes (`torchrun --nproc_per_node N -m consisid_core generate`)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable


def add_parallel_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("parallel generation (launch with torchrun; see README 'Several GPUs')")
    group.add_argument("--cfg-parallel", action="store_true",
                       help="run the two classifier-free-guidance branches on two ranks (needs guidance > 1)")
    group.add_argument("--ulysses", type=int, default=1, metavar="K",
                       help="Ulysses sequence-parallel degree (default 1; needs the parallel extra: pip install xfuser)")
    group.add_argument("--ring", type=int, default=1, metavar="R",
                       help="ring-attention sequence-parallel degree (default 1; CUDA only; needs the parallel extra)")


def parallel_from_args(args: argparse.Namespace, device: str) -> Any:
    """This rank's ParallelPlan when a layout is asked for or torchrun started several processes, else None.

    Ranks other than 0 print nothing (rank 0 reports and writes the video)."""
    from ..parallel import ParallelConfig, ParallelSetupError, init_parallel

    config = ParallelConfig(args.cfg_parallel, args.ulysses, args.ring)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if not config.enabled and launched == 1:
        config.validate(1)  # still refuses --ulysses 0 and the like
        return None
    if not config.enabled:
        raise ParallelSetupError(
            f"torchrun started {launched} processes but no parallel layout was given: add --cfg-parallel and/or "
            "--ulysses K / --ring R whose product is the number of processes"
        )
    plan = init_parallel(config, device)
    if not plan.is_writer:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        os.environ["TQDM_DISABLE"] = "1"  # one progress bar (rank 0's)
    return plan


def built_once(plan: Any, build: Callable[[], Any]) -> Any:
    """`build()` on rank 0 only, its result shared with every rank (e.g. the random-weights demo folder)."""
    if plan is None:
        return build()
    import torch.distributed as dist

    box = [build() if plan.is_writer else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
