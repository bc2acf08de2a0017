"""What a face detector returns, and the small interface (seam) every detector in FaceModels implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class DetectedFace:
    """One detection: x1,y1,x2,y2 box and 5 points (eye, eye, nose, mouth corner, mouth corner) in pixels."""

    bbox: np.ndarray  # (4,) float32
    kps: np.ndarray  # (5, 2) float32
    score: float
    source: str  # which detector found it, e.g. "antelopev2" or "retinaface"

    @property
    def area(self) -> np.float32:
        b = self.bbox
        return (b[2] - b[0]) * (b[3] - b[1])


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in a BGR uint8 image; results keep the detector's own order."""

    name: str

    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]: ...
