"""Stand-in for the parts of ComfyUI 0.8 `comfy/model_management.py` custom nodes call (CPU only).

`calls` counts soft_empty_cache / unload_all_models calls so tests can see the pack cooperating.
"""

from __future__ import annotations

import threading
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


def free_memory(memory_required, device, keep_loaded=[]):
    calls["free_memory"] += 1
    unloaded = list(current_loaded_models)
    current_loaded_models.clear()
    return unloaded


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
