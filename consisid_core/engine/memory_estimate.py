"""One documented estimate of each stage's activation memory (bytes), for memory managers to reserve.

ComfyUI's `load_models_gpu(memory_required=...)` keeps that much free beside the weights; without it it keeps
about 1.2 GB, while one DiT step at 49x480x720 with CFG needs about 3 GB. The figures are upper estimates of the
peak inside one stage, from the shapes alone (never measured at run time, so they cost nothing):

- DiT step: batch B (2 with CFG, else 1) x tokens T (text + latent_frames x (h/p) x (w/p)) x dtype bytes x
  (6 x width + 2 x feed-forward width): the block's input and norm outputs, q/k/v, the attention output and the
  feed-forward hidden state alive together. A kernel that materialises the attention scores (the `sdpa_math`
  backend, and any attention on the CPU) adds B x heads x T^2 x bytes x 2 (scores and softmax).
- T5: B x text tokens x (4 x d_model + 2 x d_ff) x 4 bytes (T5 keeps fp32 where it must) plus its scores.
- VAE encode (one face image) and decode: full-resolution feature maps of the first block's width; decode holds
  `DECODE_MAPS` such maps for each batch of frames it decodes at once (2 latent frames -> 8 video frames), over
  the whole frame, or over one tile with tiling (CogVideoX tiles are 240x360 pixels).
- Face networks (RetinaFace at 640 px, BiSeNet at 512 px, EVA-CLIP-L at 336 px, one image): `FACE`.
- A floor of `FLOOR` for kernels' workspaces.
"""

from __future__ import annotations

import torch

from ..model_info import ModelInfo

MiB = 1 << 20
FLOOR = 256 * MiB
FACE = 512 * MiB
ENCODE_MAPS = 6  # full-resolution maps alive at once while encoding one image
DECODE_MAPS = 28  # ... while decoding a batch of frames (causal conv caches, upsampling, fp32 group norms)
DECODE_FRAMES = 8  # video frames per decoded batch (diffusers' CogVideoX decodes 2 latent frames at a time)
TILE = (240, 360)  # CogVideoX VAE tile (tile_sample_min_height, tile_sample_min_width)


def _get(config, key: str, default):
    """A config value from a dict or a config object (diffusers/transformers)."""
    value = config.get(key) if isinstance(config, dict) else getattr(config, key, None)
    return default if value is None else value


def _bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def materialises_scores(attention: str, device: torch.device) -> bool:
    """True when the attention kernel builds the full T x T score matrix (math kernel, CPU)."""
    return attention == "sdpa_math" or torch.device(device).type == "cpu"


def dit_tokens(info: ModelInfo, height: int, width: int, num_frames: int) -> int:
    """Text + video tokens the transformer attends over."""
    p = info.patch_size
    h, w = height // info.vae_spatial, width // info.vae_spatial
    return info.text_len + info.latent_frames(num_frames) * (h // p) * (w // p)


def dit_step(info: ModelInfo, transformer_config, height: int, width: int, num_frames: int, cfg: bool,
             dtype: torch.dtype, attention: str = "sdpa", device: torch.device | str = "cuda") -> int:
    """Peak activations of one transformer call (see the module docstring)."""
    batch = 2 if cfg else 1
    tokens = dit_tokens(info, height, width, num_frames)
    heads = int(_get(transformer_config, "num_attention_heads", 48))
    inner = heads * info.attention_head_dim
    ff = int(_get(transformer_config, "ff_inner_dim", 4 * inner))
    size = _bytes(dtype)
    total = batch * tokens * size * (6 * inner + 2 * ff)
    if materialises_scores(attention, torch.device(device)):
        total += batch * heads * tokens * tokens * size * 2
    return FLOOR + total


def text_encode(text_len: int, t5_config) -> int:
    """Peak activations of one T5 encoder call (fp32 where T5 needs it)."""
    d_model = int(_get(t5_config, "d_model", 4096))
    d_ff = int(_get(t5_config, "d_ff", 10240))
    heads = int(_get(t5_config, "num_heads", 64))
    return FLOOR + text_len * (4 * d_model + 2 * d_ff) * 4 + heads * text_len * text_len * 4 * 2


def vae_encode(vae_config, height: int, width: int, dtype: torch.dtype) -> int:
    """Peak activations of encoding one image at the output size."""
    channels = int(_get(vae_config, "block_out_channels", (128,))[0])
    return FLOOR + ENCODE_MAPS * height * width * channels * _bytes(dtype)


def vae_decode(vae_config, height: int, width: int, dtype: torch.dtype, tiling: bool) -> int:
    """Peak activations of decoding, over the whole frame or one tile."""
    channels = int(_get(vae_config, "block_out_channels", (128,))[0])
    if tiling:
        height, width = min(height, TILE[0]), min(width, TILE[1])
    return FLOOR + DECODE_MAPS * DECODE_FRAMES * height * width * channels * _bytes(dtype)


def face_networks() -> int:
    """Peak activations of the face networks on one photo."""
    return FACE
