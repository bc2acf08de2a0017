"""The training objective: v-prediction turned into x0, SNR weights, plain or face-masked mean."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def latent_mask(mask: torch.Tensor, latent_frames: int, height: int, width: int) -> torch.Tensor:
    """Pixel face masks [F, H, W] (0..1) -> latent-size masks [T, h, w] by trilinear interpolation."""
    volume = mask.float()[None, None]  # [1, 1, F, H, W]
    resized = F.interpolate(volume, size=(latent_frames, height, width), mode="trilinear", align_corners=False)
    return resized[0, 0]


def loss_weights(scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """1 / (1 - alphas_cumprod[t]) per sample, as the reference weights its loss."""
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    return 1.0 / (1.0 - alphas)


def per_element_loss(scheduler, model_output: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor,
                     timesteps: torch.Tensor) -> torch.Tensor:
    """w(t) * (x0_pred - x0)^2 per element, with x0_pred = scheduler.get_velocity(v_pred, noisy, t)."""
    x0_pred = scheduler.get_velocity(model_output.float(), noisy.float(), timesteps)
    weights = loss_weights(scheduler, timesteps).float()
    weights = weights.view(-1, *([1] * (x0_pred.ndim - 1)))
    return weights * (x0_pred - clean.float()) ** 2


def reduce_sample(loss: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """One sample's loss [T, C, h, w]: plain mean, or (loss * M).sum() / M.sum() with M [T, h, w] over channels."""
    if mask is None:
        return loss.mean()
    full = mask.to(loss.dtype)[:, None].expand_as(loss)
    return (loss * full).sum() / full.sum().clamp_min(1e-8)


def batch_loss(loss: torch.Tensor, masks: list[torch.Tensor | None]) -> torch.Tensor:
    """Mean over the batch of each sample's reduced loss (`masks[i]` None = plain mean for sample i)."""
    return torch.stack([reduce_sample(loss[i], masks[i]) for i in range(loss.shape[0])]).mean()
