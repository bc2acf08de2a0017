"""Latents -> video frames, optionally with VAE tiling/slicing (which change numerics slightly)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def vae_mode(vae, tiling: bool, slicing: bool) -> Iterator[None]:
    """Switch tiling/slicing on for one decode only, so encoding stays exact."""
    saved = (getattr(vae, "use_tiling", False), getattr(vae, "use_slicing", False))
    vae.use_tiling, vae.use_slicing = tiling, slicing
    try:
        yield
    finally:
        vae.use_tiling, vae.use_slicing = saved


def decode_latents(vae, processor, latents: torch.Tensor, scaling: float, tiling: bool = False,
                   slicing: bool = False) -> torch.Tensor:
    """[1, T, C, h, w] latents -> [F, H, W, 3] float32 frames in [0, 1] on the CPU."""
    z = latents.permute(0, 2, 1, 3, 4)
    z = 1 / scaling * z
    with vae_mode(vae, tiling, slicing):
        video = vae.decode(z).sample
    frames = processor.postprocess_video(video=video, output_type="pt")[0]  # [F, 3, H, W]
    return frames.permute(0, 2, 3, 1).float().cpu().contiguous()
