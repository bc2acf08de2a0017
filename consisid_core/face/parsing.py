"""Keep only the face (skin, brows, eyes, nose, mouth, hair) of the aligned crop, on white, as the reference does."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .bisenet import BiSeNet

# background, l_ear, r_ear, earring, neck, necklace, cloth, hat (facexlib's CelebAMask-HQ label order)
BACKGROUND_LABELS = (0, 16, 18, 7, 8, 9, 14, 15)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def crop_to_tensor(crop_bgr: np.ndarray, device: torch.device) -> torch.Tensor:
    """[1,3,H,W] float32 RGB in [0,1], built like the reference's img2tensor (same values and memory layout)."""
    rgb = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB)
    return (torch.from_numpy(rgb.transpose(2, 0, 1)).float().unsqueeze(0) / 255.0).to(device)


def background_mask(parser: BiSeNet, face: torch.Tensor) -> torch.Tensor:
    """[1,1,H,W] bool, True where BiSeNet sees background, clothes, ears, neck or accessories."""
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=face.dtype, device=face.device).view(-1, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=face.dtype, device=face.device).view(-1, 1, 1)
    labels = parser(face.clone().sub_(mean).div_(std)).argmax(dim=1, keepdim=True)
    mask = labels == BACKGROUND_LABELS[0]
    for label in BACKGROUND_LABELS[1:]:
        mask |= labels == label
    return mask


def to_gray(face: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma replicated to 3 channels (the reference's `to_gray`, same operation order)."""
    gray = 0.299 * face[:, 0:1] + 0.587 * face[:, 1:2] + 0.114 * face[:, 2:3]
    return gray.repeat(1, 3, 1, 1)


def face_on_white(parser: BiSeNet, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(grey face on white for EVA-CLIP, colour face on white for the VAE), both [1,3,H,W] in [0,1]."""
    with torch.inference_mode():
        bg = background_mask(parser, face)
        white = torch.ones_like(face)
        return torch.where(bg, white, to_gray(face)), torch.where(bg, white, face)


def to_uint8_image(face: torch.Tensor) -> np.ndarray:
    """[1,3,H,W] in [0,1] -> HxWx3 uint8, truncating like the reference's `.astype(np.uint8)`."""
    return (face.squeeze(0).permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
