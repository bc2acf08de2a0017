"""Latents -> video frames, optionally with VAE tiling/slicing (which change numerics slightly)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def _stitchable(factor: float, latent_tile: int) -> float:
    """An overlap factor for which diffusers' tile stride equals its crop size (else the video grows).

    CogVideoX's tiled decode steps by int(L*(1-f)) latents but keeps 8L - int(8Lf) pixels per tile; the
    two agree only when L*f is a whole number (true for the real 480x720 setting, L=30, f=1/6).
    """
    overlap = max(1, round(latent_tile * factor))
    return overlap / latent_tile


@contextlib.contextmanager
def vae_mode(vae, tiling: bool, slicing: bool) -> Iterator[None]:
    """Switch tiling/slicing on for one decode only, so encoding stays exact."""
    names = ("use_tiling", "use_slicing", "tile_overlap_factor_height", "tile_overlap_factor_width")
    saved = {name: getattr(vae, name, None) for name in names}
    vae.use_tiling, vae.use_slicing = tiling, slicing
    if tiling and saved["tile_overlap_factor_height"] is not None:
        vae.tile_overlap_factor_height = _stitchable(saved["tile_overlap_factor_height"], vae.tile_latent_min_height)
        vae.tile_overlap_factor_width = _stitchable(saved["tile_overlap_factor_width"], vae.tile_latent_min_width)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is not None:
                setattr(vae, name, value)


def decode_latents(vae, processor, latents: torch.Tensor, scaling: float, tiling: bool = False,
                   slicing: bool = False) -> torch.Tensor:
    """[1, T, C, h, w] latents -> [F, H, W, 3] float32 frames in [0, 1] on the CPU."""
    z = latents.permute(0, 2, 1, 3, 4)
    z = 1 / scaling * z
    with vae_mode(vae, tiling, slicing):
        video = vae.decode(z).sample
    frames = processor.postprocess_video(video=video, output_type="pt")[0]  # [F, 3, H, W]
    return frames.permute(0, 2, 3, 1).float().cpu().contiguous()
