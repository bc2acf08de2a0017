"""Cheap latent -> RGB previews: a linear map fitted per model from the model's own VAE.

The map is learned once per loaded model by VAE-encoding flat colour images and solving least squares
from their (scaled) latent means to their colours; applying it to latents costs one small matmul.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..cancel import checkpoint
from .conditioning import encode_posterior

FIT_COLOURS = 24
FIT_SIZE = 64


@dataclass(frozen=True)
class LatentRGBMap:
    """rgb (in [-1, 1]) = latent @ weight + bias, for latents in the denoiser's (scaled) space."""

    weight: torch.Tensor  # [C, 3]
    bias: torch.Tensor  # [3]

    def to_rgb(self, latents: torch.Tensor, frame: int = 0) -> np.ndarray:
        """One latent frame ([1, T, C, h, w], [T, C, h, w] or [C, h, w]) as an h x w x 3 uint8 image."""
        x = latents.detach()
        while x.ndim > 3:
            x = x[0] if x.ndim == 5 else x[min(frame, x.shape[0] - 1)]
        rgb = x.float().cpu().permute(1, 2, 0) @ self.weight + self.bias
        return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()

    def residual(self, latent_means: torch.Tensor, colours: torch.Tensor) -> float:
        """Mean absolute colour error of the map on (latent mean, colour) pairs, in [-1, 1] units."""
        return float((latent_means.float() @ self.weight + self.bias - colours).abs().mean())


def fit_colours(count: int = FIT_COLOURS, seed: int = 0) -> torch.Tensor:
    """[count, 3] colours in [-1, 1]: black, white, the six primaries/secondaries, greys, then random ones."""
    fixed = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0],
             [0.25] * 3, [0.5] * 3, [0.75] * 3]
    rng = np.random.default_rng(seed)
    extra = rng.random((max(0, count - len(fixed)), 3)).tolist()
    return torch.tensor((fixed + extra)[:count], dtype=torch.float32) * 2 - 1


@torch.inference_mode()
def latent_means(engine, colours: torch.Tensor, size: int = FIT_SIZE) -> torch.Tensor:
    """[N, C] scaled VAE latent means of flat images of `colours`, averaged over the latent's centre."""
    images = colours.view(-1, 3, 1, 1).expand(-1, 3, size, size)
    means = []
    with engine.placement.use(engine.vae):
        for image in images:
            checkpoint(getattr(engine, "should_cancel", None))  # one at a time: the CogVideoX VAE caches per-batch conv state
            params = encode_posterior(engine.vae, image[None].to(engine.device, engine.dtype))
            mean = params[:, : params.shape[1] // 2, 0].float()  # [1, C, h, w]
            h, w = mean.shape[-2:]
            centre = mean[..., h // 4 : h - h // 4 or h, w // 4 : w - w // 4 or w]
            means.append(centre.mean(dim=(-2, -1))[0].cpu())
    return torch.stack(means) * engine.info.vae_scaling


def fit_latent_rgb_map(engine, count: int = FIT_COLOURS, size: int = FIT_SIZE, seed: int = 0) -> LatentRGBMap:
    """Least-squares linear map from scaled latents to colours for this engine's VAE."""
    colours = fit_colours(count, seed)
    latents = latent_means(engine, colours, size)
    design = torch.cat([latents, torch.ones(len(latents), 1)], dim=1).double()
    solution = torch.linalg.lstsq(design, colours.double(), rcond=None).solution.float()
    return LatentRGBMap(weight=solution[:-1].contiguous(), bias=solution[-1].contiguous())
