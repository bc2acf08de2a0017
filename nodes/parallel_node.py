"""ConsisID Parallel Workers: a group of GPU worker processes that the Sampler hands its denoising to."""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

import torch
from comfy_api.v0_0_2 import io
from consisid_core import node_ids

from . import comfy_bridge
from .errors import label, reported_as
from .types import CATEGORY, Sockets

_log = logging.getLogger("ConsisID")
_LOCK = threading.RLock()  # ComfyUI may stop the group from inside our own load call (its memory manager)
_POOLS: dict[tuple, Any] = {}  # (engine settings, layout) -> ParallelPool; one group alive at a time
_PATCHERS: list = []  # the ComfyUI model patcher standing for the live group (unloading it stops the workers)
_PRECISION_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def release_pools() -> None:
    """Stop every worker group and take its patcher out of ComfyUI's loaded-model list."""
    with _LOCK:
        patchers = list(_PATCHERS)
        _stop_groups()
        for patcher in patchers:
            _unlist(patcher)


def _stop_groups() -> None:
    with _LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
        _PATCHERS.clear()
        for pool in pools:
            pool.close(grace=5.0)
            _log.info("ConsisID: stopped the parallel workers (%s)", pool.config.describe())


def _stopped_by_comfyui(patcher) -> None:
    """ON_DETACH of the group's patcher: ComfyUI unloaded it (/free, Unload, memory pressure); ComfyUI takes it
    out of its list itself. The re-listing detach of a reload (unpatch_all=False) never gets here."""
    with _LOCK:
        if _PATCHERS and _PATCHERS[0] is patcher:
            _stop_groups()


class ConsisIDWorkerGroup(torch.nn.Module):
    """What ComfyUI sees (and logs) of the worker group: a named placeholder (the weights live in the workers)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("marker", torch.zeros(1), persistent=False)

    def get_dtype(self) -> torch.dtype:
        return self.marker.dtype


@functools.lru_cache(maxsize=None)
def _patcher_class(base: type) -> type:
    class WorkersPatcher(base):
        """ComfyUI's ModelPatcher for the group: loaded = every rank's weights in place (no partial state);
        ComfyUI cannot free part of it, so a request for memory unloads (detaches) it and ON_DETACH stops it."""

        def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
            before = self.model.model_loaded_weight_memory
            self.model.device = device_to
            self.model.model_loaded_weight_memory = self.model_size()
            return self.model_size() - before

        def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
            return 0

    return WorkersPatcher


def workers_patcher(load_device, size: int):
    """A patcher on ComfyUI's device (where rank 0 runs) sized like one rank's weights; detaching it stops the group."""
    import comfy.model_patcher
    from comfy.patcher_extension import CallbacksMP

    cls = _patcher_class(comfy.model_patcher.ModelPatcher)
    patcher = cls(ConsisIDWorkerGroup(), load_device=torch.device(load_device), offload_device=torch.device("cpu"),
                  size=max(int(size), 1))
    patcher.add_callback(CallbacksMP.ON_DETACH, lambda p, unpatch_all: unpatch_all and _stopped_by_comfyui(p))
    return patcher


def _list(patcher) -> None:
    """Load (list) the patcher in ComfyUI's memory manager: it frees room on the device first when short."""
    import comfy.model_management as mm

    mm.load_models_gpu([patcher])


def _unlist(patcher) -> None:
    """Take a patcher out of ComfyUI's loaded-model list (a group that failed to start or crashed)."""
    import comfy.model_management as mm

    for i in range(len(mm.current_loaded_models) - 1, -1, -1):
        entry = mm.current_loaded_models[i]
        if entry.model is patcher:
            mm.current_loaded_models.pop(i)
            patcher.detach(unpatch_all=False)


class ParallelWorkers:
    """What the Sampler receives: the layout, the model settings and LoRA stack; the workers start on first use."""

    def __init__(self, settings: Any, config: Any, device: str, model_bytes: int = 0, lora_stack: tuple = (),
                 load_device: Any = None) -> None:
        self.settings, self.config, self.device, self.bytes = settings, config, device, model_bytes
        self.lora_stack = tuple(lora_stack)
        self.load_device = torch.device(load_device if load_device is not None else device)

    def runtime(self) -> dict:
        """The DiT Loader's runtime setting, as every worker loads its transformer with it."""
        runtime = self.settings.runtime
        memory_mode = runtime.memory_mode
        return {"dtype": runtime.dtype_name, "attention": runtime.attention,
                "memory_mode": memory_mode if memory_mode in ("model_offload", "sequential_offload") else "none",
                "weight_dtype": runtime.weight_dtype, "compile": runtime.compile}

    def pool(self):
        """The running worker group for these settings (started, or restarted after a crash or /free), set to run
        this model's LoRA stack."""
        from consisid_core.parallel.pool import ParallelPool

        key = (self.settings, self.config)
        with _LOCK:
            pool = _POOLS.get(key)
            if pool is None or not pool.alive:
                release_pools()
                patcher = workers_patcher(self.load_device, self.bytes)
                _PATCHERS.append(patcher)
                _list(patcher)  # ComfyUI makes room for the workers before they load
                _log.info("ConsisID: starting %d parallel workers (%s)", self.config.world_size,
                          self.config.describe())
                try:
                    pool = ParallelPool(self.settings.path, self.config, device=self.device, runtime=self.runtime(),
                                        first_device=self.load_device.index or 0)
                except BaseException:
                    _PATCHERS.clear()
                    _unlist(patcher)
                    raise
                _POOLS[key] = pool
            else:
                _list(_PATCHERS[0])  # most recently used in ComfyUI's list
            pool.loras = self.lora_stack
            return pool


class ConsisIDParallelWorkers(io.ComfyNode):
    DISPLAY_NAME = "ConsisID Parallel Workers"
    LABEL = label(DISPLAY_NAME, node_ids.PARALLEL_WORKERS)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.PARALLEL_WORKERS,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Runs the Sampler's denoising on several GPUs: worker processes (one per GPU, each with its own copy "
                "of the DiT with the loader's precision, weight_dtype, compile and the LoRA chain; text encoding and "
                "decoding stay here) started on first use and kept alive between runs, stopped by Unload models / "
                "free memory / another model needing the GPU, and when ComfyUI exits. "
                "cfg_parallel puts the two guidance branches on two GPUs (no attention change, the first to use); "
                "ulysses/ring split the video tokens (needs `pip install xfuser`). GPUs needed = (2 if cfg_parallel) "
                "x ulysses x ring. Connect to the Sampler's parallel input."
            ),
            inputs=[
                Sockets.Model.Input("model", tooltip=(
                    "From ConsisID DiT Loader: each worker loads the same model and settings.")),
                io.Boolean.Input("cfg_parallel", default=True, tooltip=(
                    "Two GPUs share the two classifier-free-guidance branches (needs cfg > 1).")),
                io.Int.Input("ulysses", default=1, min=1, max=8, tooltip=(
                    "Ulysses sequence-parallel degree: GPUs that share the video tokens (attention heads "
                    "all-to-all).")),
                io.Int.Input("ring", default=1, min=1, max=8, tooltip=(
                    "Ring-attention degree: GPUs that pass key/value blocks around a ring (CUDA only).")),
            ],
            outputs=[Sockets.Parallel.Output(
                "parallel", tooltip="The worker group, for ConsisID Sampler's optional parallel input.")],
        )

    @classmethod
    def execute(cls, model, cfg_parallel, ulysses, ring) -> io.NodeOutput:
        from consisid_core.parallel import ParallelConfig

        with reported_as(cls.LABEL):
            config = ParallelConfig(bool(cfg_parallel), int(ulysses), int(ring))
            config.validate(config.world_size)
            load_device = comfy_bridge.torch_device()
            device = "cuda" if str(load_device).startswith("cuda") else "cpu"
            settings = model.settings
        return io.NodeOutput(ParallelWorkers(settings, config, device, _model_bytes(settings),
                                             getattr(model, "lora_stack", ()), load_device))


def _model_bytes(settings: Any) -> int:
    """Device bytes of one rank's transformer at the loader's precision and weight storage."""
    from consisid_core.parallel.worker_engine import estimate_bytes

    return estimate_bytes(settings.path, _PRECISION_BYTES.get(settings.runtime.dtype_name, 2),
                          settings.runtime.weight_dtype)
