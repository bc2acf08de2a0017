"""Stand-in for the parts of ComfyUI 0.8 `comfy/model_management.py` custom nodes call (CPU only).

`calls` counts soft_empty_cache / unload_all_models / load_models_gpu calls so tests can see the pack cooperating;
`current_loaded_models`, `LoadedModel`, `load_models_gpu` and `free_memory` follow ComfyUI's logic (a CPU
device, no free-memory figures: freeing unloads every model on the device).
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter

import torch

current_loaded_models: list = []
calls: Counter = Counter()


def get_torch_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def text_encoder_device():
    return torch.device("cpu")


def vae_device():
    return torch.device("cpu")


def is_device_type(device, type):
    return hasattr(device, "type") and device.type == type


def is_device_cpu(device):
    return is_device_type(device, "cpu")


def cpu_mode():
    return True


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return False


def soft_empty_cache(force=False):
    calls["soft_empty_cache"] += 1


def module_size(module):
    return sum(t.nbytes for t in module.state_dict().values())


class LoadedModel:
    """One entry of `current_loaded_models`: a weak reference to a ModelPatcher and the device it loads to."""

    def __init__(self, model):
        self._model = weakref.ref(model)
        self.device = model.load_device
        self.real_model = None
        self.currently_used = True
        self.model_finalizer = None

    @property
    def model(self):
        return self._model()

    def model_memory(self):
        return self.model.model_size()

    def model_loaded_memory(self):
        return self.model.loaded_size()

    def model_offloaded_memory(self):
        return self.model.model_size() - self.model.loaded_size()

    def model_memory_required(self, device):
        if device == self.model.current_loaded_device():
            return self.model_offloaded_memory()
        return self.model_memory()

    def model_load(self, lowvram_model_memory=0, force_patch_weights=False):
        self.model.model_patches_to(self.device)
        self.model.model_patches_to(self.model.model_dtype())
        self.model_use_more_vram(lowvram_model_memory or 1e32, force_patch_weights=force_patch_weights)
        real_model = self.model.model
        self.real_model = weakref.ref(real_model)
        self.model_finalizer = weakref.finalize(real_model, cleanup_models)
        return real_model

    def model_unload(self, memory_to_free=None, unpatch_weights=True):
        if memory_to_free is not None and memory_to_free < self.model.loaded_size():
            freed = self.model.partially_unload(self.model.offload_device, memory_to_free)
            if freed >= memory_to_free:
                return False
        self.model.detach(unpatch_weights)
        self.model_finalizer.detach()
        self.model_finalizer = None
        self.real_model = None
        return True

    def model_use_more_vram(self, extra_memory, force_patch_weights=False):
        return self.model.partially_load(self.device, extra_memory, force_patch_weights=force_patch_weights)

    def __eq__(self, other):
        return self.model is other.model

    def is_dead(self):
        return self.real_model() is not None and self.model is None


vram_capacity = None  # stand-in only: the bytes a test pretends the device holds (None: unlimited)


def get_free_memory(dev=None, torch_free_too=False):
    if vram_capacity is None:
        free = 1 << 50
    else:
        free = vram_capacity - sum(m.model_loaded_memory() for m in current_loaded_models if m.model is not None)
    return (free, free) if torch_free_too else free


def free_memory(memory_required, device, keep_loaded=[]):  # noqa: B006  (ComfyUI's signature; only read)
    """ComfyUI's order: least-offloaded, least-referenced models first, until `memory_required` is free."""
    calls["free_memory"] += 1
    can_unload, unloaded = [], []
    for i in range(len(current_loaded_models) - 1, -1, -1):
        loaded = current_loaded_models[i]
        if loaded.device == device and loaded not in keep_loaded and not loaded.is_dead():
            can_unload.append((-loaded.model_offloaded_memory(), loaded.model_memory(), i))
            loaded.currently_used = False
    candidates = [current_loaded_models[i] for *_, i in sorted(can_unload)]
    for loaded in candidates:
        free = get_free_memory(device)
        if free > memory_required:
            break
        if loaded.model_unload(memory_required - free):
            unloaded.append(loaded)
    for loaded in unloaded:  # by identity: a finalizer may have tidied the list meanwhile
        for i in range(len(current_loaded_models) - 1, -1, -1):
            if current_loaded_models[i] is loaded:
                current_loaded_models.pop(i)
    if unloaded:
        soft_empty_cache()
    return unloaded


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False):
    calls["load_models_gpu"] += 1
    to_load = []
    for patcher in models:
        loaded = LoadedModel(patcher)
        if loaded in current_loaded_models:
            loaded = current_loaded_models[current_loaded_models.index(loaded)]
            loaded.currently_used = True
        to_load.append(loaded)
    for loaded in to_load:  # as ComfyUI: a model already listed (or a clone of it) is detached, weights kept
        for i in range(len(current_loaded_models) - 1, -1, -1):
            if loaded.model.is_clone(current_loaded_models[i].model):
                unloaded = current_loaded_models.pop(i)
                unloaded.model.detach(unpatch_all=False)
                if unloaded.model_finalizer is not None:
                    unloaded.model_finalizer.detach()
    required = sum(m.model_memory_required(m.device) for m in to_load) + memory_required
    if vram_capacity is not None and to_load:
        free_memory(required, to_load[0].device, keep_loaded=to_load)
    for loaded in to_load:
        loaded.model_load(0, force_patch_weights=force_patch_weights)
        current_loaded_models.insert(0, loaded)


def loaded_models(only_currently_used=False):
    return [m.model for m in current_loaded_models if m.currently_used or not only_currently_used]


def cleanup_models():
    for i in range(len(current_loaded_models) - 1, -1, -1):
        real = current_loaded_models[i].real_model
        if real is not None and real() is None:
            current_loaded_models.pop(i)


def unload_all_models():
    calls["unload_all_models"] += 1
    free_memory(1e30, get_torch_device())


class InterruptProcessingException(Exception):
    pass


interrupt_processing_mutex = threading.RLock()
interrupt_processing = False


def interrupt_current_processing(value=True):
    global interrupt_processing
    with interrupt_processing_mutex:
        interrupt_processing = value


def processing_interrupted():
    with interrupt_processing_mutex:
        return interrupt_processing


def throw_exception_if_processing_interrupted():
    global interrupt_processing
    with interrupt_processing_mutex:
        if interrupt_processing:
            interrupt_processing = False
            raise InterruptProcessingException()
