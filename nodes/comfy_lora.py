"""A ConsisID LoRA file as ComfyUI weight patches for the transformer's ModelPatcher.

The file (diffusers format, `transformer.<layer>.lora_A/lora_B.weight`, alpha in the adapter metadata) is read and
checked by `consisid_core.engine.lora`; ComfyUI's own `comfy.lora.load_lora` turns it into patches keyed by the
container's weight names, so strength changes and partial loading work as for any ComfyUI LoRA. On fp8 layers
the LoRA is a weight wrapper applied to the dequantised weight at each use (`LoraOnUse`) instead of being merged
into the fp8 storage: merging would round the LoRA's update to the fp8 grid (on the tiny test model the video
moved by 0.03, against 4e-6 for the wrapper, compared with the CLI's peft adapter).
"""

from __future__ import annotations

import torch

from consisid_core.engine.lora import PREFIX, check_fits, read_lora

CONTAINER_PREFIX = "inner."  # comfy_memory.ComfyModel keeps the real model under `inner`


def _key_map(container: torch.nn.Module) -> dict[str, str]:
    """LoRA key stem (`transformer.<layer>`) -> the weight ComfyUI patches (`inner.<layer>.weight`)."""
    inner = container.inner
    return {f"{PREFIX}{name}": f"{CONTAINER_PREFIX}{name}.weight" for name, module in inner.named_modules()
            if isinstance(module, torch.nn.Linear)}


def _with_alpha(state: dict[str, torch.Tensor], metadata: dict | None) -> dict[str, torch.Tensor]:
    """Add `<stem>.alpha` tensors from the adapter metadata (ComfyUI scales by alpha / rank; none = 1.0, as peft)."""
    if not metadata or "lora_alpha" not in metadata:
        return state
    alphas = dict(metadata.get("alpha_pattern") or {})
    out = dict(state)
    for key in state:
        if ".lora_A." not in key:
            continue
        stem = key.split(".lora_A.")[0]
        layer = stem[len(PREFIX):]
        alpha = next((v for pattern, v in alphas.items() if layer.endswith(pattern)), metadata["lora_alpha"])
        out[f"{stem}.alpha"] = torch.tensor(float(alpha))
    return out


def patches_for(container: torch.nn.Module, path: str) -> dict:
    """ComfyUI patches of the LoRA at `path` for the transformer container (refused if it does not fit)."""
    import comfy.lora

    state, metadata = read_lora(path)
    check_fits(container.inner, state, str(path))
    return comfy.lora.load_lora(_with_alpha(state, metadata), _key_map(container), log_missing=False)


class LoraOnUse:
    """One layer's LoRA update added to its (dequantised) weight each time the layer runs."""

    def __init__(self, key: str, adapter, strength: float) -> None:
        self.key = key
        self.patches = [(float(strength), adapter, 1.0, None, None)]

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        import comfy.lora

        return comfy.lora.calculate_weight(self.patches, weight, self.key, intermediate_dtype=weight.dtype)


def add_to_patcher(patcher, patches: dict, strength: float) -> None:
    """Weight patches on ordinary layers; `LoraOnUse` wrappers on fp8 layers (their storage stays exact)."""
    modules = dict(patcher.model.named_modules())
    merged = {}
    for key, adapter in patches.items():
        layer = modules.get(key.rsplit(".", 1)[0])
        if layer is not None and hasattr(layer, "weight_scale"):
            patcher.add_weight_wrapper(key, LoraOnUse(key, adapter, strength))
        else:
            merged[key] = adapter
    patcher.add_patches(merged, strength)
