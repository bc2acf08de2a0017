"""3-D rotary position embeddings for the video tokens, as CogVideoX-1.0 / ConsisID compute them."""

from __future__ import annotations

import torch

from ..model_info import ModelInfo


def _crop_region(grid_h: int, grid_w: int, base_w: int, base_h: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Top-left/bottom-right of the grid fitted (aspect kept, centred) into the base grid."""
    if grid_h / grid_w > base_h / base_w:
        new_h, new_w = base_h, int(round(base_h / grid_h * grid_w))
    else:
        new_w, new_h = base_w, int(round(base_w / grid_w * grid_h))
    top = int(round((base_h - new_h) / 2.0))
    left = int(round((base_w - new_w) / 2.0))
    return (top, left), (top + new_h, left + new_w)


def rotary_embeddings(info: ModelInfo, height: int, width: int, latent_frames: int, device: torch.device):
    """(cos, sin) tables for a video of `height` x `width` pixels and `latent_frames` latent frames."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    step = info.vae_spatial * info.patch_size
    grid_h, grid_w = height // step, width // step
    base_w = info.native_width // info.vae_spatial // info.patch_size
    base_h = info.native_height // info.vae_spatial // info.patch_size
    return get_3d_rotary_pos_embed(
        embed_dim=info.attention_head_dim,
        crops_coords=_crop_region(grid_h, grid_w, base_w, base_h),
        grid_size=(grid_h, grid_w),
        temporal_size=latent_frames,
        device=device,
    )
