"""Our torch modules as ComfyUI models: layers become ComfyUI's casting operations (as ComfyUI-GGUF plugs in).

ComfyUI's stock ModelPatcher decides per layer what stays resident on the GPU and what is cast on use, but only
for layers that carry `comfy_cast_weights` (its `comfy.ops` classes). `adopt(model, device)` therefore swaps the
class of every plain Linear, Conv, norm and Embedding (and our fp8 Linear) for the matching ComfyUI op, in
place: no weight is copied, state-dict keys stay the same, and `consisid_core` never imports ComfyUI.

Everything else that holds tensors directly - a leaf the ops do not cover (diffusers' RMSNorm, T5's LayerNorm,
the VAE's safe Conv3d, BatchNorm, PReLU) or a parameter sitting on a non-leaf module (the perceiver's latents,
the patch embedding's position table), which ComfyUI's partial loader skips - gets a cast-on-use hook: when its
forward runs while one of its own tensors is not on the compute device, a device copy stands in for that call
and the host tensor is put back afterwards. A full load moves them with the model, so the hook then does nothing.
"""

from __future__ import annotations

import functools
from typing import Iterator

import torch
from torch import nn

from consisid_core.runtime.fp8 import FP8, FP8_MAX, FP8Linear

_HOOKED = "_consisid_cast_on_use"  # module attribute: the hook handles (and marks a module as adopted)
_STASH = "_consisid_host_tensors"  # module attribute: name -> host tensor while a device copy stands in
_TORCH_OPS = {  # exact torch class -> name of the ComfyUI op class (subclasses keep their own forward)
    nn.Linear: "Linear", nn.Conv1d: "Conv1d", nn.Conv2d: "Conv2d", nn.Conv3d: "Conv3d",
    nn.GroupNorm: "GroupNorm", nn.LayerNorm: "LayerNorm", nn.Embedding: "Embedding",
    nn.ConvTranspose1d: "ConvTranspose1d", nn.ConvTranspose2d: "ConvTranspose2d",
}


def _ops():
    import comfy.ops

    return comfy.ops.disable_weight_init


def own_tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor, bool]]:
    """(name, tensor, is_parameter) of the module's own parameters and buffers."""
    for name, value in module._parameters.items():
        if value is not None:
            yield name, value, True
    for name, value in module._buffers.items():
        if value is not None:
            yield name, value, False


def is_comfy_op(module: nn.Module) -> bool:
    """True when ComfyUI's ModelPatcher can load this layer partially (it casts its weight and bias on use)."""
    return hasattr(module, "comfy_cast_weights")


def _covered_by_op(module: nn.Module) -> bool:
    """A ComfyUI op casts weight and bias itself; our fp8 op also brings its scale."""
    return is_comfy_op(module) and {n for n, _, _ in own_tensors(module)} <= {"weight", "bias", "weight_scale"}


@functools.lru_cache(maxsize=None)
def _fp8_op_class(cast_base: type) -> type:
    """FP8Linear as a ComfyUI op: dequantised (weight x scale) before LoRA patches, re-quantised with the same scale."""

    class ComfyFP8Linear(FP8Linear, cast_base):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.comfy_cast_weights or self.weight_function or self.bias_function:
                return self._forward_cast(x)
            return FP8Linear.forward(self, x)

        def _forward_cast(self, x: torch.Tensor) -> torch.Tensor:
            import comfy.model_management as mm

            non_blocking = mm.device_supports_non_blocking(x.device)
            weight = mm.cast_to(self.weight, None, x.device, non_blocking=non_blocking)
            scale = mm.cast_to(self.weight_scale, torch.float32, x.device, non_blocking=non_blocking)
            weight = self.convert_weight(weight, scale=scale).to(x.dtype)
            for patch in self.weight_function:
                weight = patch(weight)
            bias = None
            if self.bias is not None:
                bias = mm.cast_to(self.bias, x.dtype, x.device, non_blocking=non_blocking, copy=bool(self.bias_function))
                for patch in self.bias_function:
                    bias = patch(bias)
            return torch.nn.functional.linear(x, weight, bias)

        def convert_weight(self, weight: torch.Tensor, inplace: bool = False, scale: torch.Tensor | None = None,
                           **_) -> torch.Tensor:
            """The real weight (fp8 x per-tensor scale) in float32, which ComfyUI's LoRA patching adds to."""
            scale = self.weight_scale if scale is None else scale
            return weight.float() * scale.to(weight.device, torch.float32)

        def set_weight(self, weight: torch.Tensor, inplace_update: bool = False, seed: int = 0, **_) -> None:
            """Store a patched weight back in fp8 with the layer's own scale (so unpatching restores it exactly)."""
            scale = self.weight_scale.to(weight.device, torch.float32)
            q = (weight.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
            if inplace_update:
                self.weight.data.copy_(q)
            else:
                self.weight = nn.Parameter(q, requires_grad=False)

    return ComfyFP8Linear


def _to_op(module: nn.Module, ops) -> None:
    if type(module) is FP8Linear:
        module.__class__ = _fp8_op_class(_cast_base())
    elif type(module) in _TORCH_OPS:
        module.__class__ = getattr(ops, _TORCH_OPS[type(module)])
    else:
        return
    module.weight_function = []  # per-layer lists (the class-level defaults are shared by every layer)
    module.bias_function = []
    if not hasattr(module, "bias"):  # what the op's constructor would have set (its Embedding has bias = None)
        module.bias = None


def _cast_base() -> type:
    import comfy.ops

    return comfy.ops.CastWeightBiasOp


def _on(tensor: torch.Tensor, device: torch.device) -> bool:
    return tensor.device.type == device.type and (device.index is None or tensor.device.index == device.index)


def _restore(module: nn.Module) -> None:
    stash = module.__dict__.get(_STASH)
    if not stash:
        return
    for name, (value, is_param) in stash.items():
        (module._parameters if is_param else module._buffers)[name] = value
    stash.clear()


def _cast_in(module: nn.Module, device: torch.device) -> int:
    """Give the module device copies of its own tensors that are elsewhere, for one call; returns how many."""
    stash = module.__dict__.setdefault(_STASH, {})
    moved = 0
    for name, tensor, is_param in list(own_tensors(module)):
        if _on(tensor, device):
            continue
        stash[name] = (tensor, is_param)
        copy = tensor.detach().to(device, non_blocking=True)
        if is_param:
            module._parameters[name] = nn.Parameter(copy, requires_grad=False)
        else:
            module._buffers[name] = copy
        moved += 1
    return moved


def _attach_cast_on_use(module: nn.Module, device: torch.device) -> None:
    before = module.register_forward_pre_hook(lambda m, args: (_cast_in(m, device), None)[1])
    after = module.register_forward_hook(lambda m, args, out: _restore(m))
    module.__dict__[_HOOKED] = (before, after)


def adopt(model: nn.Module, device: torch.device) -> nn.Module:
    """Make `model` loadable layer by layer by ComfyUI's stock ModelPatcher onto `device` (in place; idempotent)."""
    ops = _ops()
    for module in model.modules():
        _to_op(module, ops)
    for module in model.modules():
        if _HOOKED in module.__dict__ or _covered_by_op(module) or not any(True for _ in own_tensors(module)):
            continue
        _attach_cast_on_use(module, torch.device(device))
    return model


def cast_on_use_modules(model: nn.Module) -> list[str]:
    """Names of the modules `adopt` gave a cast-on-use hook (tests, logs)."""
    return [name for name, module in model.named_modules() if _HOOKED in module.__dict__]


def uncovered(model: nn.Module) -> list[str]:
    """Tensors neither a ComfyUI op nor a cast-on-use hook brings to the device: must be empty after `adopt`."""
    return [f"{name}.{t}" for name, module in model.named_modules()
            if _HOOKED not in module.__dict__ and not _covered_by_op(module)
            for t, _, _ in own_tensors(module)]

