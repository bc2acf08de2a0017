"""fp8 weight storage for the transformer blocks: float8_e4m3fn weights with one scale per tensor.

Only the linear layers inside `transformer_blocks` (attention projections and feed-forward) are stored in
fp8; patch embedding, time embedding, every norm (including the blocks' modulation linears), biases, the
local facial extractor, the perceiver cross-attentions and `proj_out` keep the model dtype. The scale is
`max|W| / 448`, computed at load time. `fp8_e4m3fn` upcasts each weight for its matmul (any device);
`fp8_e4m3fn_fast` multiplies in fp8 with `torch._scaled_mm` (NVIDIA compute capability 8.9+), the activations
scaled per tensor by a power of two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import WEIGHT_DTYPES
from ..errors import UnsupportedInputError

FP8 = getattr(torch, "float8_e4m3fn", None)
FP8_MAX = 448.0  # largest finite float8_e4m3fn
FAST_MIN_CAPABILITY = (8, 9)  # Ada / Hopper and newer have fp8 tensor cores


def weight_dtype_problem(weight_dtype: str, device: torch.device) -> str | None:
    """Why `weight_dtype` cannot be used on `device` (one line saying what to choose instead), or None."""
    if weight_dtype not in WEIGHT_DTYPES:
        return f"weight_dtype must be one of {list(WEIGHT_DTYPES)}; got {weight_dtype!r}"
    if weight_dtype != "default" and FP8 is None:
        return f"weight_dtype {weight_dtype!r} needs torch >= 2.1 (float8 types); choose 'default'"
    if weight_dtype == "fp8_e4m3fn_fast":
        if device.type != "cuda":
            return (f"weight_dtype 'fp8_e4m3fn_fast' needs an NVIDIA GPU with fp8 tensor cores (RTX 40xx, L4, L40, "
                    f"H100 or newer) but the device is '{device}'; choose 'fp8_e4m3fn' (same memory, upcast matmuls)")
        capability = torch.cuda.get_device_capability(device)
        if tuple(capability) < FAST_MIN_CAPABILITY:
            name = torch.cuda.get_device_name(device)
            return (f"weight_dtype 'fp8_e4m3fn_fast' needs compute capability 8.9+ (RTX 40xx, L4, L40, H100...); "
                    f"{name} has {capability[0]}.{capability[1]}; choose 'fp8_e4m3fn' (same memory, upcast matmuls)")
    return None


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 weight, float32 scalar scale) with weight ~= fp8 * scale.

    The scale is the power of two just above max|W| / 448, so upcasting (fp8 * scale in bf16/fp16) is exact.
    """
    weight = weight.detach()
    amax = weight.abs().amax().float().clamp(min=torch.finfo(torch.float32).tiny)
    scale = torch.exp2(torch.ceil(torch.log2(amax / FP8_MAX)))
    # dividing by a power of two is exact in the weight's own dtype: no float32 copy of the weight is needed
    q = (weight / scale.to(weight.dtype)).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return q, scale.reshape(())


class FP8Linear(nn.Linear):
    """An nn.Linear whose `weight` is float8_e4m3fn with a per-tensor `weight_scale` buffer (float32)."""

    fast: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast:
            return scaled_mm_linear(x, self.weight, self.weight_scale, self.bias)
        weight = self.weight.to(x.dtype) * self.weight_scale.to(x.dtype)
        return F.linear(x, weight, self.bias)


def activation_scale(rows: torch.Tensor) -> torch.Tensor:
    """Per-tensor fp8 scale of the activations: the power of two just above max|x| / 448 (float32 scalar).

    A power of two is exact in every float dtype, so the activations divided by it (in their own dtype) and the
    scale handed to `_scaled_mm` are the same number: the product is not off by a rounded scale.
    """
    amax = rows.abs().amax().float().clamp(min=torch.finfo(torch.float32).tiny)
    # at least the dtype's smallest normal number (a power of two too): never 0 once cast to fp16
    return torch.exp2(torch.ceil(torch.log2(amax / FP8_MAX))).clamp(min=torch.finfo(rows.dtype).tiny)


def scaled_mm_linear(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                     bias: torch.Tensor | None) -> torch.Tensor:
    """x @ (weight * weight_scale).T + bias in fp8 with torch._scaled_mm; x gets its own per-tensor scale.

    CUDA's `_scaled_mm` takes a bias only with a 16-bit output, so with a float32 output the bias is added after.
    """
    rows = x.reshape(-1, x.shape[-1])
    x_scale = activation_scale(rows)
    x8 = (rows / x_scale.to(rows.dtype)).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    out_dtype = x.dtype if x.dtype in (torch.bfloat16, torch.float16, torch.float32) else torch.bfloat16
    fused = bias is not None and out_dtype != torch.float32
    out = torch._scaled_mm(x8, weight.t(), scale_a=x_scale, scale_b=weight_scale.float(),
                           bias=bias.to(out_dtype) if fused else None, out_dtype=out_dtype)
    if bias is not None and not fused:
        out = out + bias.to(out_dtype)
    return out.reshape(*x.shape[:-1], out.shape[-1])


def fp8_layer_names(transformer: nn.Module) -> list[str]:
    """Names of the linear layers stored in fp8: those in transformer_blocks outside any norm."""
    return [name for name, module in transformer.named_modules()
            if type(module) is nn.Linear and name.startswith("transformer_blocks.") and "norm" not in name]


@torch.no_grad()
def apply_weight_dtype(transformer: nn.Module, weight_dtype: str) -> nn.Module:
    """Convert the block linears of a loaded transformer to fp8 storage in place (new tensors; files untouched)."""
    if weight_dtype == "default":
        return transformer
    if weight_dtype not in WEIGHT_DTYPES or FP8 is None:
        raise UnsupportedInputError(f"weight_dtype must be one of {list(WEIGHT_DTYPES)}; got {weight_dtype!r}")
    fast = weight_dtype == "fp8_e4m3fn_fast"
    modules = dict(transformer.named_modules())
    for name in fp8_layer_names(transformer):
        layer = modules[name]
        layer.compute_dtype = layer.weight.dtype  # peft reads this: LoRA adapters stay in the model dtype
        q, scale = quantize(layer.weight)
        layer.weight = nn.Parameter(q, requires_grad=False)
        layer.register_buffer("weight_scale", scale.to(q.device))
        layer.__class__ = FP8Linear
        layer.fast = fast
    return transformer


def weight_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))

