"""`batch --parallel`: every server runs its jobs on a group of GPU workers (the ConsisID Parallel Workers node).

The batch still schedules one job at a time per server; a server with a worker group is one multi-GPU
unit in that scheduling, so N servers x G GPUs each render N videos at once, each on G GPUs."""

from __future__ import annotations

import copy

from .. import node_ids
from ..parallel.config import ParallelConfig, ParallelSetupError

WORKERS_NODE = node_ids.PARALLEL_WORKERS


def parse_layout(text: str) -> ParallelConfig:
    """`cfg`, `ulysses=K`, `ring=R`, comma-separated (e.g. `cfg,ulysses=2`) -> a checked ParallelConfig."""
    cfg, degrees = False, {"ulysses": 1, "ring": 1}
    for item in (part.strip().lower() for part in text.split(",")):
        key, _, value = item.partition("=")
        if item == "cfg":
            cfg = True
        elif key in degrees and value.strip().isdigit() and int(value) >= 1:
            degrees[key] = int(value)
        else:
            raise ParallelSetupError(
                f"--parallel: '{item}' is not one of cfg, ulysses=K, ring=R (e.g. --parallel cfg,ulysses=2)")
    config = ParallelConfig(cfg, degrees["ulysses"], degrees["ring"])
    if not config.enabled:
        raise ParallelSetupError("--parallel needs more than one GPU's worth of layout: cfg, ulysses=K>1 or ring=R>1")
    return config


def with_parallel_workers(workflow: dict, config: ParallelConfig) -> dict:
    """A copy of the API workflow whose Sampler runs on a Parallel Workers node built from its DiT Loader."""
    patched = copy.deepcopy(workflow)
    samplers = [i for i, n in patched.items() if n.get("class_type") == node_ids.SAMPLER]
    loaders = [i for i, n in patched.items() if n.get("class_type") == node_ids.MODEL_LOADER]
    if len(samplers) != 1 or len(loaders) != 1:
        raise ParallelSetupError(
            f"--parallel needs a workflow with exactly one {node_ids.SAMPLER} and one {node_ids.MODEL_LOADER}; "
            f"this one has {len(samplers)} and {len(loaders)}")
    node_id = str(max((int(i) for i in patched if str(i).isdigit()), default=0) + 1)
    patched[node_id] = {"class_type": WORKERS_NODE, "inputs": {
        "model": [loaders[0], 0], "cfg_parallel": config.cfg_parallel, "ulysses": config.ulysses_degree,
        "ring": config.ring_degree}}
    patched[samplers[0]]["inputs"]["parallel"] = [node_id, 0]
    return patched
