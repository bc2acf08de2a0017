"""Global (low-frequency) conditioning: the face image, and keypoints for checkpoints that use them."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..errors import UnsupportedInputError


def to_pil_rgb(image) -> Image.Image:
    """Accept PIL, HxWx3 uint8 arrays or HxWx3 / 1xHxWx3 tensors (float in [0,1] or uint8) as an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.ndim != 3 or tensor.shape[-1] not in (1, 3, 4):
            raise UnsupportedInputError(f"face image tensor must be HxWx3; got shape {tuple(image.shape)}")
        if tensor.dtype.is_floating_point:
            tensor = (tensor.float().clamp(0, 1) * 255).round().to(torch.uint8)
        image = tensor.numpy()
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=-1)
        if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
            raise UnsupportedInputError(f"face image array must be HxWx3; got shape {array.shape}")
        if array.shape[-1] == 1:
            array = np.repeat(array, 3, axis=-1)
        if array.dtype != np.uint8:
            if np.issubdtype(array.dtype, np.floating):
                array = (np.clip(array, 0, 1) * 255).round()
            array = np.clip(array, 0, 255).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(array[..., :3]), "RGB")
    raise UnsupportedInputError(f"face image must be a PIL image, array or tensor; got {type(image).__name__}")


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
