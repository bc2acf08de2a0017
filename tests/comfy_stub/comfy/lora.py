"""Stand-in for ComfyUI 0.8 `comfy/lora.py`: diffusers-format LoRA (lora_A/lora_B, optional alpha) as patches."""

from __future__ import annotations

import torch


def load_lora(lora, to_load, log_missing=True):
    patch_dict = {}
    for x in to_load:
        a, b = f"{x}.lora_A.weight", f"{x}.lora_B.weight"
        if a in lora and b in lora:
            alpha = lora[f"{x}.alpha"].item() if f"{x}.alpha" in lora else None
            patch_dict[to_load[x]] = ("lora", (lora[b], lora[a], alpha))
    return patch_dict


def calculate_weight(patches, weight, key, intermediate_dtype=torch.float32, original_weights=None):
    for strength, value, strength_model, _offset, _function in patches:
        if strength_model != 1.0:
            weight *= strength_model
        kind, (up, down, alpha) = value
        scale = 1.0 if alpha is None else alpha / down.shape[0]
        diff = torch.mm(up.flatten(1).to(intermediate_dtype), down.flatten(1).to(intermediate_dtype))
        weight += ((strength * scale) * diff.reshape(weight.shape)).to(weight.dtype)
    return weight
