"""Stand-in for ComfyUI 0.8 `comfy/ops.py` `disable_weight_init`: layers that cast weight and bias on use.

As in ComfyUI, a layer runs its plain torch forward unless `comfy_cast_weights` is set or weight/bias functions
(lowvram LoRA patches) are attached; then weight and bias are cast to the input's device and dtype first.
"""

from __future__ import annotations

import torch


def cast_bias_weight(s, input=None, dtype=None, device=None, bias_dtype=None, offloadable=False):
    dtype = input.dtype if dtype is None else dtype
    device = input.device if device is None else device
    weight = s.weight.to(device=device, dtype=dtype, copy=bool(s.weight_function))
    for f in s.weight_function:
        weight = f(weight)
    bias = None
    if s.bias is not None:
        bias = s.bias.to(device=device, dtype=bias_dtype or dtype, copy=bool(s.bias_function))
        for f in s.bias_function:
            bias = f(bias)
    if offloadable:
        return weight, bias, (None, weight, bias)
    return weight, bias


class CastWeightBiasOp:
    comfy_cast_weights = False
    weight_function = []
    bias_function = []


def _op(base: type, functional):
    class Op(base, CastWeightBiasOp):
        def reset_parameters(self):
            return None

        def forward_comfy_cast_weights(self, input, *args, **kwargs):
            weight, bias = cast_bias_weight(self, input)
            return functional(self, input, weight, bias)

        def forward(self, *args, **kwargs):
            if self.comfy_cast_weights or len(self.weight_function) > 0 or len(self.bias_function) > 0:
                return self.forward_comfy_cast_weights(*args, **kwargs)
            return super().forward(*args, **kwargs)

    Op.__name__ = Op.__qualname__ = base.__name__
    return Op


F = torch.nn.functional


class disable_weight_init:
    Linear = _op(torch.nn.Linear, lambda s, x, w, b: F.linear(x, w, b))
    Conv1d = _op(torch.nn.Conv1d, lambda s, x, w, b: s._conv_forward(x, w, b))
    Conv2d = _op(torch.nn.Conv2d, lambda s, x, w, b: s._conv_forward(x, w, b))
    Conv3d = _op(torch.nn.Conv3d, lambda s, x, w, b: s._conv_forward(x, w, b))
    GroupNorm = _op(torch.nn.GroupNorm, lambda s, x, w, b: F.group_norm(x, s.num_groups, w, b, s.eps))
    LayerNorm = _op(torch.nn.LayerNorm, lambda s, x, w, b: F.layer_norm(x, s.normalized_shape, w, b, s.eps))
    Embedding = _op(torch.nn.Embedding, lambda s, x, w, b: F.embedding(x, w, s.padding_idx))
    ConvTranspose1d = _op(torch.nn.ConvTranspose1d, lambda s, x, w, b: F.conv_transpose1d(
        x, w, b, s.stride, s.padding, s.output_padding, s.groups, s.dilation))
    ConvTranspose2d = _op(torch.nn.ConvTranspose2d, lambda s, x, w, b: F.conv_transpose2d(
        x, w, b, s.stride, s.padding, s.output_padding, s.groups, s.dilation))
