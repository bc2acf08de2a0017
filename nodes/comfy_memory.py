"""Our big models under ComfyUI's memory manager: one ModelPatcher each, loaded with `load_models_gpu`.

Each stage asks ComfyUI to load the models it needs (the engine's `placement.before_use`), so ComfyUI
frees room by evicting other models, and evicts ours (POST /free, the Unload button, another pack's model)
through the patcher. Loading and unloading go through consisid_core's Placement: host copies stay in RAM,
device copies are made on load and dropped on unload; nothing is ever copied back to the host.
"""

from __future__ import annotations

import functools
import logging
import weakref
from typing import Callable

import torch

from consisid_core.engine.offload import Placement, module_bytes

from . import comfy_bridge

_log = logging.getLogger("ConsisID")


def _mm():
    import comfy.model_management as mm

    return mm


@functools.lru_cache(maxsize=None)
def _patcher_class(base: type) -> type:
    class ConsisIDPatcher(base):
        """A ModelPatcher whose loads and unloads are our Placement's (no weight patching, no copy back)."""

        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False,
                     placement: Placement | None = None, on_unload: Callable[[], None] | None = None):
            super().__init__(model, load_device, offload_device, size, weight_inplace_update)
            self.placement = placement
            self.on_unload = on_unload
            self.loaded = False

        @property
        def streams(self) -> bool:
            return self.placement.mode == "sequential_offload"

        def model_size(self):
            if self.size <= 0:  # sequential offload only ever holds about two layers on the device
                self.size = _working_set(self.model) if self.streams else module_bytes(self.model)
            return self.size

        def loaded_size(self):
            if not self.loaded:
                return 0
            if self.streams or self.placement.device.type == "cpu":
                return self.model_size()
            return self.placement.device_bytes(self.model)

        def current_loaded_device(self):
            return self.load_device if self.loaded else self.offload_device

        def model_dtype(self):
            return next(self.model.parameters()).dtype

        def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
            before = self.loaded_size()
            self.loaded = True
            if not self.streams:
                self.placement.load(self.model)
            self.model.model_loaded_weight_memory = self.loaded_size()
            return self.loaded_size() - before

        def patch_model(self, device_to=None, lowvram_model_memory=0, load_weights=True, force_patch_weights=False):
            if load_weights:
                self.partially_load(device_to)
            return self.model

        def _unload(self) -> int:
            freed = self.loaded_size()
            if self.loaded:
                _log.info("ConsisID: ComfyUI unloaded %s (device copy dropped, host copy kept for the next run)",
                          _name(self.model))
            self.placement.unload(self.model)
            self.loaded = False
            self.model.model_loaded_weight_memory = 0
            if self.on_unload is not None:
                self.on_unload()
            return freed

        def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
            return self._unload()

        def unpatch_model(self, device_to=None, unpatch_weights=True):
            if unpatch_weights:
                self._unload()

        def detach(self, unpatch_all=True):
            if unpatch_all:  # (load_models_gpu detaches a model it is about to reload with unpatch_all=False)
                self._unload()
            return self.model

    return ConsisIDPatcher


def _name(model: torch.nn.Module) -> str:
    return "face models" if isinstance(model, torch.nn.ModuleList) else type(model).__name__


def _working_set(model: torch.nn.Module) -> int:
    own = [sum(t.nbytes for t in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False)))
           for m in model.modules()]
    return 2 * max(own, default=0)  # the running layer and the prefetched one


def make_patcher(model: torch.nn.Module, placement: Placement, on_unload: Callable[[], None] | None = None):
    """A ComfyUI ModelPatcher for `model` whose memory moves are `placement`'s."""
    import comfy.model_patcher

    cls = _patcher_class(comfy.model_patcher.ModelPatcher)
    return cls(model, placement.device, torch.device("cpu"), placement=placement, on_unload=on_unload)


def load(patchers) -> None:
    """Ask ComfyUI to load these patchers (it evicts other models first when the device is short)."""
    patchers = [p for p in patchers if p is not None]
    if patchers:
        _mm().load_models_gpu(patchers)


def manage_engine(engine, on_unload: Callable[[], None] | None = None) -> dict[int, object]:
    """Register the engine's T5, transformer and VAE with ComfyUI and route each stage through it."""
    patchers = {id(m): make_patcher(m, engine.placement, on_unload)
                for m in (engine.text_encoder, engine.transformer, engine.vae)}
    ref = weakref.ref(engine)

    def before_use(models) -> None:
        if ref() is not None:
            load(patchers.get(id(m)) for m in models)

    engine.placement.before_use = before_use
    engine.should_cancel = comfy_bridge.throw_if_interrupted
    return patchers


def manage_face_models(models, on_unload: Callable[[], None] | None = None):
    """A patcher for the face networks; unloading also frees onnxruntime's CUDA arenas."""
    if models.placement is None:
        return None
    bundle = torch.nn.ModuleList(models.networks())

    def unloaded() -> None:
        models.offload()
        if on_unload is not None:
            on_unload()

    return make_patcher(bundle, models.placement, unloaded)


def forget(patchers) -> None:
    """Drop device copies of patchers about to be forgotten (no copy back; ComfyUI's list cleans itself up)."""
    for patcher in patchers:
        if patcher is not None:
            patcher.placement.unload(patcher.model)
            patcher.loaded = False
