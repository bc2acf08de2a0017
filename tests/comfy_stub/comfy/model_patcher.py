"""Stand-in for the parts of ComfyUI 0.8 `comfy/model_patcher.py` that `model_management` and custom nodes use.

Same names and signatures as ComfyUI; partial (lowvram) loading is left out: loading moves the whole model to
`load_device` and applies the weight patches (LoRA: backup, patch through the layer's convert/set functions when
it has them), unloading restores the backups and moves it to `offload_device`, clones share the model and its
backups, and the bookkeeping attributes ComfyUI keeps on the model (`model_loaded_weight_memory`, ...) are kept
the same way. The real partial loading is tested against a real ComfyUI (tests/comfyui_e2e).
"""

from __future__ import annotations

import uuid

import torch

import comfy.lora
import comfy.model_management
from comfy.patcher_extension import CallbacksMP


def get_key_weight(model, key):
    op_name, attr = key.rsplit(".", 1)
    op = model.get_submodule(op_name)
    set_func = getattr(op, f"set_{attr}", None)
    convert_func = getattr(op, f"convert_{attr}", None)
    return getattr(op, attr), set_func, convert_func


def _restore_backups(patcher):
    """Put the unpatched weights back (ComfyUI does this inside unpatch_model)."""
    for key, weight in patcher.backup.items():
        op_name, attr = key.rsplit(".", 1)
        setattr(patcher.model.get_submodule(op_name), attr, torch.nn.Parameter(weight, requires_grad=False))
    patcher.backup.clear()
    patcher.model.current_weight_patches_uuid = None


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.size = size
        self.model = model
        if not hasattr(self.model, "device"):
            self.model.device = offload_device
        elif self.model.device is None:
            self.model.device = offload_device
        self.patches = {}
        self.backup = {}
        self.object_patches = {}
        self.object_patches_backup = {}
        self.model_options = {"transformer_options": {}}
        self.load_device = load_device
        self.offload_device = offload_device
        self.weight_inplace_update = weight_inplace_update
        self.patches_uuid = uuid.uuid4()
        self.parent = None
        self.callbacks = CallbacksMP.init_callbacks()
        for name, value in (("model_loaded_weight_memory", 0), ("lowvram_patch_counter", 0), ("model_lowvram", False),
                            ("current_weight_patches_uuid", None), ("model_offload_buffer_memory", 0)):
            if not hasattr(self.model, name):
                setattr(self.model, name, value)

    def model_size(self):
        if self.size > 0:
            return self.size
        self.size = comfy.model_management.module_size(self.model)
        return self.size

    def loaded_size(self):
        return self.model.model_loaded_weight_memory

    def lowvram_patch_counter(self):
        return self.model.lowvram_patch_counter

    def is_clone(self, other):
        return hasattr(other, "model") and self.model is other.model

    def model_patches_to(self, device):
        pass

    def model_patches_models(self):
        return []

    def model_dtype(self):
        if hasattr(self.model, "get_dtype"):
            return self.model.get_dtype()

    def clone(self):
        n = self.__class__(self.model, self.load_device, self.offload_device, self.model_size(),
                           weight_inplace_update=self.weight_inplace_update)
        n.patches = {k: v[:] for k, v in self.patches.items()}
        n.patches_uuid = self.patches_uuid
        n.backup = self.backup
        n.parent = self
        n.callbacks = {k: {k1: c1.copy() for k1, c1 in c.items()} for k, c in self.callbacks.items()}
        return n

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        model_sd = self.model.state_dict()
        added = set()
        for key in patches:
            if key in model_sd:
                added.add(key)
                self.patches.setdefault(key, []).append((strength_patch, patches[key], strength_model, None, None))
        self.patches_uuid = uuid.uuid4()
        return list(added)

    def add_callback(self, call_type, callback):
        self.callbacks.setdefault(call_type, {}).setdefault(None, []).append(callback)

    def get_all_callbacks(self, call_type):
        return [c for group in self.callbacks.get(call_type, {}).values() for c in group]

    def patch_weight_to_device(self, key, device_to=None, inplace_update=False):
        if key not in self.patches:
            return
        weight, set_func, convert_func = get_key_weight(self.model, key)
        if key not in self.backup:
            self.backup[key] = weight.detach().clone()
        temp = weight.detach().to(device=device_to or weight.device, dtype=torch.float32, copy=True)
        if convert_func is not None:
            temp = convert_func(temp, inplace=True)
        out = comfy.lora.calculate_weight(self.patches[key], temp, key)
        if set_func is None:
            op_name, attr = key.rsplit(".", 1)
            setattr(self.model.get_submodule(op_name), attr, torch.nn.Parameter(out.to(weight.dtype), requires_grad=False))
        else:
            set_func(out, inplace_update=inplace_update, seed=0)

    def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False, full_load=False):
        if self.model.current_weight_patches_uuid not in (None, self.patches_uuid):
            _restore_backups(self)  # another clone's patches are on the weights
        if self.model.current_weight_patches_uuid is None:
            for key in self.patches:
                self.patch_weight_to_device(key, device_to)
        self.model.to(device_to)
        self.model.device = device_to
        self.model.model_loaded_weight_memory = self.model_size()
        self.model.current_weight_patches_uuid = self.patches_uuid

    def patch_model(self, device_to=None, lowvram_model_memory=0, load_weights=True, force_patch_weights=False):
        if load_weights:
            self.load(device_to, lowvram_model_memory, force_patch_weights, full_load=True)
        return self.model

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        if unpatch_weights:
            _restore_backups(self)
            if device_to is not None:
                self.model.to(device_to)
                self.model.device = device_to
            self.model.model_loaded_weight_memory = 0

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
        freed = self.model.model_loaded_weight_memory
        self.unpatch_model(device_to)
        return freed

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
        current = self.model.model_loaded_weight_memory
        if current > 0 and self.model.current_weight_patches_uuid == self.patches_uuid:
            return 0
        self.load(device_to, current + extra_memory, force_patch_weights, full_load=True)
        return self.model.model_loaded_weight_memory - current

    def detach(self, unpatch_all=True):
        self.model_patches_to(self.offload_device)
        if unpatch_all:
            self.unpatch_model(self.offload_device, unpatch_weights=unpatch_all)
        for callback in self.get_all_callbacks(CallbacksMP.ON_DETACH):
            callback(self, unpatch_all)
        return self.model

    def current_loaded_device(self):
        return self.model.device
