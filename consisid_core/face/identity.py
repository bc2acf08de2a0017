"""The identity a photo yields (what the transformer and VAE are conditioned on), and averaging several."""

from __future__ import annotations

from dataclasses import dataclass, replace
from collections.abc import Sequence

import numpy as np
import torch

ARCFACE_DIM = 512


@dataclass
class Identity:
    """Face conditioning from one photo (or an average of several).

    id_cond: [1, 512 + E] = raw ArcFace embedding | unit-norm EVA-CLIP embedding (E = 768 for the real model).
    id_vit_hidden: 5 EVA-CLIP hidden states [1, tokens, width] ([1, 577, 1024] for the real model).
    face_image: 512x512x3 uint8 RGB, the aligned colour face on white (the VAE conditioning image).
    kps, bbox: the identity's 5 points / box in the input photo's pixel coordinates (after EXIF rotation).
    face_kps: the same 5 points in face_image coordinates (for draw_keypoints on the crop).
    """

    id_cond: torch.Tensor
    id_vit_hidden: list[torch.Tensor]
    face_image: np.ndarray
    kps: np.ndarray
    bbox: np.ndarray
    face_kps: np.ndarray
    source_size: tuple[int, int]  # (width, height) of the photo
    work_size: tuple[int, int]  # (width, height) the detectors saw (long edge <= 1024)
    face_count: int
    detector: str  # which detector found the face: "antelopev2" or "retinaface"
    aligned_with: str  # whose 5 points aligned the crop
    embedding_source: str  # "antelopev2" or "aligned_crop" (the reference's glintr100 fallback)
    det_score: float
    align_error: float  # RMS distance to the FFHQ template after alignment (pixels of the 512 crop)
    selection: str
    photos: int = 1

    @property
    def arcface(self) -> torch.Tensor:
        return self.id_cond[:, :ARCFACE_DIM]

    @property
    def clip_embedding(self) -> torch.Tensor:
        return self.id_cond[:, ARCFACE_DIM:]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Identity":
        """A copy with the tensors moved/cast (numpy fields are shared)."""
        return replace(
            self,
            id_cond=self.id_cond.to(device=device, dtype=dtype),
            id_vit_hidden=[h.to(device=device, dtype=dtype) for h in self.id_vit_hidden],
        )


@dataclass
class FaceReading:
    """One read of a photo: the chosen face detected, aligned, ArcFace-embedded and parsed, before EVA-CLIP.

    What both branches need from the photo: `face_image` (aligned colour face on white) for the low-frequency
    (VAE) branch; `arcface` and `parsed_face` (grey face on white, what EVA-CLIP sees) for the high-frequency one.
    The other fields are Identity's, with the same meaning.
    """

    arcface: np.ndarray  # [512] float32, raw ArcFace embedding
    parsed_face: torch.Tensor  # [1, 3, H, W] float32 on the CPU, grey face on white in [0, 1]
    face_image: np.ndarray
    kps: np.ndarray
    bbox: np.ndarray
    face_kps: np.ndarray
    source_size: tuple[int, int]
    work_size: tuple[int, int]
    face_count: int
    detector: str
    aligned_with: str
    embedding_source: str
    det_score: float
    align_error: float
    selection: str


def average_identities(identities: Sequence[Identity]) -> Identity:
    """One identity from several photos of the same person.

    ArcFace vectors and EVA hidden states are averaged; the averaged EVA embedding is re-normalised to
    unit length (as each one is); the face image, points and box come from the best-aligned photo.
    """
    identities = list(identities)
    if not identities:
        raise ValueError("average_identities needs at least one Identity.")
    if len(identities) == 1:
        return identities[0]
    shapes = {(tuple(i.id_cond.shape), tuple(tuple(h.shape) for h in i.id_vit_hidden)) for i in identities}
    if len(shapes) != 1:
        raise ValueError("Cannot average identities made by different face models (their feature sizes differ).")
    arcface = torch.stack([i.arcface.float() for i in identities]).mean(0)
    clip = torch.stack([i.clip_embedding.float() for i in identities]).mean(0)
    clip = clip / clip.norm(dim=1, keepdim=True).clamp_min(1e-12)
    dtype = identities[0].id_cond.dtype
    hidden = [torch.stack([i.id_vit_hidden[k].float() for i in identities]).mean(0).to(dtype)
              for k in range(len(identities[0].id_vit_hidden))]
    best = min(identities, key=lambda i: i.align_error)
    return replace(
        best,
        id_cond=torch.cat([arcface, clip], dim=1).to(dtype),
        id_vit_hidden=hidden,
        selection=f"average of {len(identities)}",
        photos=sum(i.photos for i in identities),
    )
