"""The face chain's photo size: capped at 1024 px on the long edge like the reference, after the package's one
image normaliser (consisid_core.image_input) has read it."""

from __future__ import annotations

import cv2
import numpy as np

MAX_LONG_EDGE = 1024  # reference `resize_numpy_image_long(image, 1024)`


def resize_long_edge(rgb: np.ndarray, max_edge: int = MAX_LONG_EDGE) -> np.ndarray:
    """Shrink so the long edge is `max_edge` (Lanczos, sides truncated with int()); never enlarge."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_edge:
        return rgb
    k = max_edge / max(h, w)
    return cv2.resize(rgb, (int(w * k), int(h * k)), interpolation=cv2.INTER_LANCZOS4)
