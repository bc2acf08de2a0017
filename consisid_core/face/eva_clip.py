"""EVA02-CLIP-L-14-336 visual tower in plain torch, loading `visual.*` of the official fp16 whole-CLIP file.

Matches consisid_eva_clip's EVAVisionTransformer without xformers/apex: patch embedding, CLS + learned
positions, 2-D RoPE on patch tokens (interpolated frequencies), sub-LayerNorm attention and SwiGLU MLP.
Returns the pooled head output and the residual stream after blocks 4, 8, 12, 16 and 20.
Sizes are read from the state dict, so a tiny test tower loads through the same code.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelFilesError
from .state_dict import load_torch_state_dict

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # what consisid_eva_clip sets for a local checkpoint
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
HIDDEN_EVERY = 4  # a hidden state is kept before block idx when 0 < idx <= 20 and idx % 4 == 0
HIDDEN_LAST = 20
PT_HW_SEQ_LEN = 16  # pretraining grid of EVA02-CLIP-L (224 / 14)
LN_EPS = 1e-6
ROPE_THETA = 10000


@dataclass(frozen=True)
class EVAConfig:
    """Tower sizes; `EVA_L_336` is the checkpoint ConsisID uses."""

    width: int
    depth: int
    heads: int
    patch: int
    image_size: int
    mlp_hidden: int
    embed_dim: int

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def grid(self) -> int:
        return self.image_size // self.patch


EVA_L_336 = EVAConfig(width=1024, depth=24, heads=16, patch=14, image_size=336, mlp_hidden=2730, embed_dim=768)
EVA_TINY = EVAConfig(width=16, depth=21, heads=2, patch=14, image_size=56, mlp_hidden=42, embed_dim=16)


class _Block(nn.Module):
    def __init__(self, cfg: EVAConfig) -> None:
        super().__init__()
        w = cfg.width
        self.heads = cfg.heads
        self.norm1 = nn.LayerNorm(w, eps=LN_EPS)
        self.qkv = nn.Linear(w, 3 * w)  # q_proj|k_proj|v_proj fused; bias = q_bias|0|v_bias
        self.inner_attn_ln = nn.LayerNorm(w, eps=LN_EPS)
        self.proj = nn.Linear(w, w)
        self.norm2 = nn.LayerNorm(w, eps=LN_EPS)
        self.w12 = nn.Linear(w, 2 * cfg.mlp_hidden)  # w1|w2 fused
        self.ffn_ln = nn.LayerNorm(cfg.mlp_hidden, eps=LN_EPS)
        self.w3 = nn.Linear(cfg.mlp_hidden, w)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, w // self.heads)
        qk = _rope(qkv[:, :, :2], cos, sin)  # q and k in one go; [b, n, 2, heads, head_dim]
        q, k = qk.permute(2, 0, 3, 1, 4).unbind(0)
        v = qkv[:, :, 2].transpose(1, 2)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w)
        x = x + self.proj(self.inner_attn_ln(attn))
        gate, value = self.w12(self.norm2(x)).chunk(2, dim=-1)
        return x + self.w3(self.ffn_ln(F.silu(gate) * value))


def _rope(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """EVA's 2-D RoPE: t*cos + rotate_half(t)*sin, with rotate_half's sign folded into `sin` (same values).

    cos/sin are [tokens, 1, 1, head_dim] (CLS row 1/0, so the CLS token passes unchanged).
    """
    swapped = t.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (x0, x1) -> (x1, x0)
    return t * cos + swapped * sin


class EVAVisionTower(nn.Module):
    """[B,3,S,S] normalised pixels -> (pooled [B, embed_dim], 5 hidden states [B, 1+grid^2, width])."""

    def __init__(self, cfg: EVAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.image_size = cfg.image_size
        self.patch_embed = nn.Conv2d(3, cfg.width, cfg.patch, cfg.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid**2 + 1, cfg.width))
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, eps=LN_EPS)
        self.head = nn.Linear(cfg.width, cfg.embed_dim)
        self._rope_cache: dict = {}

    def rope(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sign-folded sin, shaped to broadcast over [batch, tokens, q|k, heads, head_dim]."""
        key = (device, dtype)
        if key not in self._rope_cache:
            cos, sin = rope_tables(self.cfg)
            sign = torch.tensor([-1.0, 1.0]).repeat(cos.shape[1] // 2)  # rotate_half = (-x1, x0) per pair
            self._rope_cache[key] = (cos[:, None, None].to(device, dtype), (sin * sign)[:, None, None].to(device, dtype))
        return self._rope_cache[key]

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        cos, sin = self.rope(x.device, x.dtype)
        hidden = []
        for idx, block in enumerate(self.blocks):
            if 0 < idx <= HIDDEN_LAST and idx % HIDDEN_EVERY == 0:
                hidden.append(x)
            x = block(x, cos, sin)
        return self.head(self.norm(x[:, 0])), hidden


def rope_tables(cfg: EVAConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [1+grid^2, head_dim] computed like VisionRotaryEmbeddingFast (float32); the CLS row is 1/0."""
    half = cfg.head_dim // 2
    freqs = 1.0 / (ROPE_THETA ** (torch.arange(0, half, 2)[: half // 2].float() / half))
    t = torch.arange(cfg.grid) / cfg.grid * PT_HW_SEQ_LEN
    freqs = torch.einsum("..., f -> ... f", t, freqs).repeat_interleave(2, dim=-1)
    g = cfg.grid
    grid = torch.cat((freqs[:, None, :].expand(g, g, -1), freqs[None, :, :].expand(g, g, -1)), dim=-1).reshape(g * g, -1)
    cos = torch.cat((torch.ones(1, grid.shape[1]), grid.cos()), 0)
    sin = torch.cat((torch.zeros(1, grid.shape[1]), grid.sin()), 0)
    return cos, sin


def preprocess(face_gray: torch.Tensor, image_size: int, dtype: torch.dtype) -> torch.Tensor:
    """torchvision resize(BICUBIC, antialias=True) on the tensor + OpenAI normalisation, then cast."""
    x = face_gray
    if list(x.shape[-2:]) != [image_size, image_size]:
        x = F.interpolate(x, size=[image_size, image_size], mode="bicubic", align_corners=False, antialias=True)
    mean = torch.as_tensor(OPENAI_MEAN, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.as_tensor(OPENAI_STD, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return x.sub(mean).div_(std).to(dtype)


def infer_config(visual: dict[str, torch.Tensor]) -> EVAConfig:
    """Read the tower sizes from an official `visual.*` state dict (prefix removed)."""
    try:
        width = visual["cls_token"].shape[-1]
        depth = 1 + max(int(k.split(".")[1]) for k in visual if k.startswith("blocks."))
        patch = visual["patch_embed.proj.weight"].shape[-1]
        grid = math.isqrt(visual["pos_embed"].shape[1] - 1)
        rope = visual.get("rope.freqs_cos", visual.get("blocks.0.attn.rope.freqs_cos"))
        head_dim = rope.shape[-1] if rope is not None else 64  # EVA02-CLIP-L: head_width 64
        return EVAConfig(
            width=width,
            depth=depth,
            heads=width // head_dim,
            patch=patch,
            image_size=grid * patch,
            mlp_hidden=visual["blocks.0.mlp.w1.weight"].shape[0],
            embed_dim=visual["head.weight"].shape[0],
        )
    except (KeyError, ValueError) as exc:
        raise ModelFilesError(f"The EVA-CLIP file does not look like EVA02-CLIP-L-14-336 (missing {exc}).") from exc


def from_official(visual: dict[str, torch.Tensor], cfg: EVAConfig, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Official visual names -> this module's names (fused qkv and w1|w2), cast to `dtype`."""
    out = {
        "patch_embed.weight": visual["patch_embed.proj.weight"],
        "patch_embed.bias": visual["patch_embed.proj.bias"],
        **{k: visual[k] for k in ("cls_token", "pos_embed", "norm.weight", "norm.bias", "head.weight", "head.bias")},
    }
    for i in range(cfg.depth):
        p, a, m = f"blocks.{i}.", f"blocks.{i}.attn.", f"blocks.{i}.mlp."
        q_bias = visual[a + "q_bias"]
        out[p + "qkv.weight"] = torch.cat([visual[a + f"{n}_proj.weight"] for n in "qkv"])
        out[p + "qkv.bias"] = torch.cat([q_bias, torch.zeros_like(q_bias), visual[a + "v_bias"]])
        out[p + "w12.weight"] = torch.cat([visual[m + "w1.weight"], visual[m + "w2.weight"]])
        out[p + "w12.bias"] = torch.cat([visual[m + "w1.bias"], visual[m + "w2.bias"]])
        for ours, theirs in (("inner_attn_ln", a + "inner_attn_ln"), ("proj", a + "proj"), ("ffn_ln", m + "ffn_ln"),
                             ("w3", m + "w3"), ("norm1", p + "norm1"), ("norm2", p + "norm2")):
            out[f"{p}{ours}.weight"] = visual[theirs + ".weight"]
            out[f"{p}{ours}.bias"] = visual[theirs + ".bias"]
    return {k: v.to(dtype) for k, v in out.items()}


def to_official(state: dict[str, torch.Tensor], cfg: EVAConfig) -> dict[str, torch.Tensor]:
    """This module's state dict -> official `visual.*`-less names (inverse of `from_official`), for writers."""
    w, h = cfg.width, cfg.mlp_hidden
    out = {
        "cls_token": state["cls_token"],
        "pos_embed": state["pos_embed"],
        "patch_embed.proj.weight": state["patch_embed.weight"],
        "patch_embed.proj.bias": state["patch_embed.bias"],
    }
    for i in range(cfg.depth):
        p, a, m = f"blocks.{i}.", f"blocks.{i}.attn.", f"blocks.{i}.mlp."
        qkv_w, qkv_b = state[p + "qkv.weight"], state[p + "qkv.bias"]
        out[p + "norm1.weight"], out[p + "norm1.bias"] = state[p + "norm1.weight"], state[p + "norm1.bias"]
        out[a + "q_bias"], out[a + "v_bias"] = qkv_b[:w], qkv_b[2 * w :]
        for j, n in enumerate("qkv"):
            out[a + f"{n}_proj.weight"] = qkv_w[j * w : (j + 1) * w]
        for ours, theirs in (("inner_attn_ln", a + "inner_attn_ln"), ("proj", a + "proj"), ("norm2", p + "norm2"),
                             ("ffn_ln", m + "ffn_ln"), ("w3", m + "w3")):
            out[theirs + ".weight"], out[theirs + ".bias"] = state[f"{p}{ours}.weight"], state[f"{p}{ours}.bias"]
        out[m + "w1.weight"], out[m + "w2.weight"] = state[p + "w12.weight"][:h], state[p + "w12.weight"][h:]
        out[m + "w1.bias"], out[m + "w2.bias"] = state[p + "w12.bias"][:h], state[p + "w12.bias"][h:]
    out.update({k: state[k] for k in ("norm.weight", "norm.bias", "head.weight", "head.bias")})
    return out


def load_eva_visual(path: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> EVAVisionTower:
    """Build the tower from the official whole-CLIP checkpoint, keeping only `visual.*`."""
    full = load_torch_state_dict(path)
    visual = {k[len("visual."):]: v for k, v in full.items() if k.startswith("visual.")}
    if not visual:
        raise ModelFilesError(f"{path} has no 'visual.*' weights; it is not the EVA02-CLIP checkpoint ConsisID uses.")
    cfg = infer_config(visual)
    with torch.device("meta"):
        tower = EVAVisionTower(cfg)
    tower.load_state_dict(from_official(visual, cfg, dtype), strict=True, assign=True)
    del full, visual
    return tower.eval().to(device)
