"""CLI options for speed (TeaCache step caching; fp8 weights and compiled blocks go with the runtime)."""

from __future__ import annotations

import argparse
from typing import Any

from ..choices import COMPILE_CHOICES, WEIGHT_DTYPES


def add_teacache_arguments(parser: argparse.ArgumentParser) -> None:
    """--teacache/--teacache-start/--teacache-end, and --weight-dtype/--compile (they go into the runtime setting)."""
    parser.add_argument("--weight-dtype", choices=WEIGHT_DTYPES, default="default",
                        help="storage of the transformer blocks' weights: default (the model dtype), fp8_e4m3fn "
                             "(12.4 -> 7.7 GB, upcast per layer) or fp8_e4m3fn_fast (fp8 matmuls; RTX 40xx/L4/H100+)")
    parser.add_argument("--compile", choices=COMPILE_CHOICES, default="off",
                        help="blocks: torch.compile each transformer block (first run compiles; not with "
                             "--offload sequential; default off)")
    parser.add_argument("--teacache", type=float, default=0.0, metavar="THRESH",
                        help="TeaCache step caching threshold: 0.1 / 0.15 / 0.2 gave 1.6x / 2.1x / 2.7x for the "
                             "ConsisID authors on an H100 (higher = faster, less exact); 0 = off (default)")
    parser.add_argument("--teacache-start", type=int, default=0, metavar="STEP",
                        help="no step before this one is skipped; below --steps (default 0)")
    parser.add_argument("--teacache-end", type=int, default=None, metavar="STEP",
                        help="no step from this one on is skipped (default: until the end)")


def teacache_from_args(args: argparse.Namespace) -> Any:
    """The TeaCache the options ask for, or None; a bad value raises UnsupportedInputError before any loading.

    A window that cannot skip any of the run's --steps is refused; options that do nothing get a note."""
    if not args.teacache and args.teacache_start == 0 and args.teacache_end is None:
        return None
    from ..engine.teacache import TeaCache
    from ..errors import UnsupportedInputError

    cache = TeaCache(args.teacache, start_step=args.teacache_start, end_step=args.teacache_end)
    steps = getattr(args, "steps", None)
    if not cache.threshold:
        print("note: --teacache-start/--teacache-end do nothing without --teacache THRESH (caching is off)", flush=True)
        return None
    if steps is not None and cache.start_step >= steps:
        raise UnsupportedInputError(
            f"--teacache-start {cache.start_step} is at or past the last step (--steps {steps} runs steps 0 to "
            f"{steps - 1}), so no step could be skipped: use 0 to {steps - 1}, or leave --teacache out")
    if steps is not None and cache.end_step is not None and cache.end_step > steps:
        print(f"note: --teacache-end {cache.end_step} is past the last step ({steps - 1}); caching runs to the end",
              flush=True)
    return cache
