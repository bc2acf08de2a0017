"""ConsisID Parallel Workers: a group of GPU worker processes that the Sampler hands its denoising to."""

from __future__ import annotations

import logging
import threading
from typing import Any

from . import comfy_bridge
from .errors import label, reported_as
from .types import CATEGORY, MODEL, PARALLEL

_log = logging.getLogger("ConsisID")
_LOCK = threading.Lock()
_POOLS: dict[tuple, Any] = {}  # (engine settings, layout) -> ParallelPool; one group alive at a time
_PATCHERS: list = []  # the ComfyUI model patcher standing for the live group (unloading it stops the workers)


def release_pools() -> None:
    """Stop every worker group (ComfyUI's /free and Unload reach this through the model patcher)."""
    with _LOCK:
        for pool in _POOLS.values():
            pool.close()
            _log.info("ConsisID: stopped the parallel workers (%s)", pool.config.describe())
        _POOLS.clear()
        _PATCHERS.clear()


def _register(pool_bytes: int) -> None:
    """Put the worker group in ComfyUI's loaded-model list, sized like one rank's model, so /free, the Unload
    button and other models' memory needs stop it like any other model."""
    import torch

    from consisid_core.engine.offload import Placement

    from . import comfy_memory

    if not _PATCHERS:
        stand_in = torch.nn.Module()
        stand_in.workers = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # the patcher reads a dtype
        patcher = comfy_memory.make_patcher(stand_in, Placement(torch.device("cpu"), managed=True), release_pools)
        patcher.size = pool_bytes
        _PATCHERS.append(patcher)
    comfy_memory.load(_PATCHERS)


class ParallelWorkers:
    """What the Sampler receives: the layout and the model settings; the workers start on first use."""

    def __init__(self, settings: Any, config: Any, device: str, model_bytes: int = 0) -> None:
        self.settings, self.config, self.device, self.bytes = settings, config, device, model_bytes

    def pool(self):
        """The running worker group for these settings (started, or restarted after a crash or /free)."""
        from consisid_core.parallel.pool import ParallelPool

        key = (self.settings, self.config)
        with _LOCK:
            pool = _POOLS.get(key)
            if pool is not None and pool.alive:
                _register(self.bytes)
                return pool
            for other in _POOLS.values():
                other.close()
            _POOLS.clear()
            _log.info("ConsisID: starting %d parallel workers (%s)", self.config.world_size, self.config.describe())
            runtime = None if self.device == "cpu" else {
                "dtype": self.settings.precision, "attention": self.settings.attention,
                "memory_mode": self.settings.memory_mode}
            pool = ParallelPool(self.settings.path, self.config, device=self.device, runtime=runtime)
            _POOLS[key] = pool
        _register(self.bytes)
        return pool


class ConsisIDParallelWorkers:
    DISPLAY_NAME = "ConsisID Parallel Workers"
    LABEL = label(DISPLAY_NAME, "ConsisIDParallelWorkers")
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Runs the Sampler's denoising on several GPUs: worker processes (one per GPU, each with its own copy of the "
        "model) started on first use and kept alive between runs, released by Unload models / free memory. "
        "cfg_parallel puts the two guidance branches on two GPUs (no attention change, the first to use); "
        "ulysses/ring split the video tokens (needs `pip install xfuser`). GPUs needed = (2 if cfg_parallel) x "
        "ulysses x ring. Connect to the Sampler's parallel input."
    )
    RETURN_TYPES = (PARALLEL,)
    RETURN_NAMES = ("parallel",)
    OUTPUT_TOOLTIPS = ("The worker group, for ConsisID Sampler's optional parallel input.",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "From ConsisID DiT Loader: each worker loads the same model and settings."}),
                "cfg_parallel": ("BOOLEAN", {"default": True, "tooltip": (
                    "Two GPUs share the two classifier-free-guidance branches (needs cfg > 1).")}),
                "ulysses": ("INT", {"default": 1, "min": 1, "max": 8, "tooltip": (
                    "Ulysses sequence-parallel degree: GPUs that share the video tokens (attention heads all-to-all).")}),
                "ring": ("INT", {"default": 1, "min": 1, "max": 8, "tooltip": (
                    "Ring-attention degree: GPUs that pass key/value blocks around a ring (CUDA only).")}),
            }
        }

    def make(self, model, cfg_parallel, ulysses, ring):
        from consisid_core.parallel import ParallelConfig

        with reported_as(self.LABEL):
            config = ParallelConfig(bool(cfg_parallel), int(ulysses), int(ring))
            config.validate(config.world_size)
            device = "cuda" if str(comfy_bridge.torch_device()).startswith("cuda") else "cpu"
        return (ParallelWorkers(model.settings, config, device, _model_bytes(model.settings.path)),)


def _model_bytes(path: str) -> int:
    """Bytes of the transformer's weight files: what each worker holds on its GPU."""
    from pathlib import Path

    folder = Path(path) / "transformer"
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) if folder.is_dir() else 0
