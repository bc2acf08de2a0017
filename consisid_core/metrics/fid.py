"""Face FID: Inception pool features of the 224 crops, the script's per-frame value and a real Fréchet distance."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .inception import INPUT_SIZE


def inception_input(crops_rgb: list[np.ndarray]) -> torch.Tensor:
    """224 RGB crops -> [N,3,299,299] in [0,1]: PIL bilinear resize + /255 (torchvision Resize + ToTensor)."""
    arrays = [np.asarray(Image.fromarray(c).resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)) for c in crops_rgb]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255.0)
    return x.contiguous()


@torch.no_grad()
def inception_features(model: torch.nn.Module, crops_rgb: list[np.ndarray], batch: int = 16) -> np.ndarray:
    """[N, 2048] float32 features (empty [0, 2048] for no crops)."""
    if not crops_rgb:
        return np.zeros((0, 2048), np.float32)
    device = next(model.parameters()).device
    out = [model(inception_input(crops_rgb[i:i + batch]).to(device)).float().cpu() for i in range(0, len(crops_rgb), batch)]
    return torch.cat(out).numpy()


def pairwise_fid(reference: np.ndarray, frame: np.ndarray) -> float:
    """The ConsisID script's per-frame "FID": one activation per side duplicated, so it is ‖a − b‖² (float32)."""
    diff = torch.from_numpy(np.asarray(reference, np.float32)) - torch.from_numpy(np.asarray(frame, np.float32))
    return float(torch.sum(diff ** 2))


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (ddof=1) covariance in float64; one sample has a zero covariance."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError("FID needs at least one feature vector per side")
    mu = x.mean(axis=0)
    sigma = np.cov(x, rowvar=False) if x.shape[0] > 1 else np.zeros((x.shape[1], x.shape[1]))
    return mu, np.atleast_2d(sigma)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ1−μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½); the trace of the root from the eigenvalues of √Σ1 Σ2 √Σ1 (PSD)."""
    w1, v1 = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    middle = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def set_fid(reference_features: np.ndarray, frame_features: np.ndarray) -> float | None:
    """Real FID between two sets of features (None when a side is empty), computed from the samples.

    With Σ1 = UᵀU and Σ2 = VᵀV (U, V the centred samples / √(n−1)), Tr(Σ1Σ2)^½ is the nuclear norm of U Vᵀ,
    so nothing of size 2048x2048 is formed; equal to the covariance formula.
    """
    if len(reference_features) == 0 or len(frame_features) == 0:
        return None
    u, mu1 = _scaled_centred(reference_features)
    v, mu2 = _scaled_centred(frame_features)
    tr_covmean = float(np.linalg.svd(u @ v.T, compute_uv=False).sum())
    diff = mu1 - mu2
    return float(diff @ diff + (u * u).sum() + (v * v).sum() - 2.0 * tr_covmean)


def _scaled_centred(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, np.float64)
    mu = x.mean(axis=0)
    n = x.shape[0]
    return ((x - mu) / np.sqrt(n - 1) if n > 1 else np.zeros_like(x)), mu
