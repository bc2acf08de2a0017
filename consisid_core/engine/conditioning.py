"""Global (low-frequency) conditioning: the face image, and keypoints for checkpoints that use them."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..errors import UnsupportedInputError
from ..image_input import InvalidImageError, load_rgb


def to_pil_rgb(image) -> Image.Image:
    """Any face image the face pipeline accepts (PIL, path, HxWxC array, ComfyUI IMAGE tensor) as RGB PIL.

    The one normaliser of the package (consisid_core.image_input): alpha composited on white, integer
    and float ranges detected the same way as for identity extraction.
    """
    try:
        return Image.fromarray(load_rgb(image), "RGB")
    except InvalidImageError as exc:
        raise UnsupportedInputError(f"face image must be a readable photo, array or tensor: {exc}") from exc


def preprocess(processor, image: Image.Image, height: int, width: int) -> torch.Tensor:
    """Stretch to height x width with Lanczos (aspect not kept, as the reference) -> [1,3,H,W] in [-1,1]."""
    return processor.preprocess(image, height=height, width=width)


def keypoint_image(face: Image.Image, kps) -> Image.Image:
    """Render 5 keypoints on a black canvas of the face image's size (the reference `draw_kps`)."""
    from ..face import draw_keypoints

    points = np.asarray(kps.detach().cpu() if isinstance(kps, torch.Tensor) else kps, dtype=np.float64)
    if points.shape != (5, 2):
        raise UnsupportedInputError(f"kps_cond must be 5 (x, y) keypoints; got shape {points.shape}")
    return Image.fromarray(draw_keypoints(face.size, points))


def encode_posterior(vae, image: torch.Tensor) -> torch.Tensor:
    """VAE posterior parameters (mean|logvar) of one image [1,3,H,W] as a single-frame video."""
    encoded = vae.encode(image.unsqueeze(2))
    dist = encoded.latent_dist if hasattr(encoded, "latent_dist") else encoded[0]
    return dist.parameters


def sample_posterior(parameters: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Draw a latent from stored posterior parameters exactly as the VAE's own `.sample(generator)`."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    return DiagonalGaussianDistribution(parameters).sample(generator)


def image_latents(image_params: torch.Tensor, kps_params: torch.Tensor | None, latent_frames: int, scaling: float,
                  dtype: torch.dtype, generator: torch.Generator | None) -> torch.Tensor:
    """[1, T, C, h, w]: sampled face latent at frame 0 (keypoints at frame 1), zeros after, times `scaling`."""
    samples = [sample_posterior(image_params, generator)]
    if kps_params is not None:
        samples.append(sample_posterior(kps_params, generator))
    parts = [scaling * s.to(dtype).permute(0, 2, 1, 3, 4) for s in samples]
    _, _, channels, h, w = parts[0].shape
    padding = torch.zeros((1, latent_frames - len(parts), channels, h, w), device=parts[0].device, dtype=dtype)
    return torch.cat([*parts, padding], dim=1)
