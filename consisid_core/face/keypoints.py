"""Draw the 5 face keypoints like the reference `draw_kps`, in the coordinate frame of the canvas given."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
from PIL import Image

STICK_WIDTH = 4
RADIUS = 10
LIMB_DIM = 0.6
LIMBS = ((0, 2), (1, 2), (3, 2), (4, 2))  # every point joined to the nose
COLORS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255))  # RGB, one per point


def draw_keypoints(image_size_or_canvas: Any, kps: Any, source_size: tuple[int, int] | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB: limbs (dimmed to 60 %) and dots of radius 10 on black.

    `image_size_or_canvas` is (width, height), a PIL image or an HxW(xC) array; like the reference, only its
    size is used. `kps` must be in that canvas' pixel frame; if they are in another image's frame, pass that
    image's (width, height) as `source_size` and they are rescaled (the reference skipped this step).
    """
    width, height = _canvas_size(image_size_or_canvas)
    points = np.array(kps).reshape(-1, 2)  # dtype kept: the reference's int(np.mean(...)) depends on it
    if not np.issubdtype(points.dtype, np.floating):
        points = points.astype(np.float64)
    if source_size is not None:
        points = points * np.array([width / source_size[0], height / source_size[1]])
    canvas = np.zeros((height, width, 3))
    for a, b in LIMBS:
        if max(a, b) >= len(points):
            continue
        x, y = points[[a, b], 0], points[[a, b], 1]
        length = ((x[0] - x[1]) ** 2 + (y[0] - y[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(y[0] - y[1], x[0] - x[1]))
        polygon = cv2.ellipse2Poly((int(np.mean(x)), int(np.mean(y))), (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1)
        canvas = cv2.fillConvexPoly(canvas, polygon, COLORS[a])
    canvas = (canvas * LIMB_DIM).astype(np.uint8)
    for index, (x, y) in enumerate(points[: len(COLORS)]):
        canvas = cv2.circle(canvas, (int(x), int(y)), RADIUS, COLORS[index], -1)
    return canvas


def _canvas_size(obj: Any) -> tuple[int, int]:
    if isinstance(obj, Image.Image):
        return obj.size
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(v, (int, np.integer)) for v in obj):
        return int(obj[0]), int(obj[1])
    shape = getattr(obj, "shape", None)
    if shape is not None and len(shape) in (2, 3, 4):
        dims = tuple(shape[1:3]) if len(shape) == 4 else tuple(shape[:2])  # [B,H,W,C] tensors too
        return int(dims[1]), int(dims[0])
    raise ValueError(f"draw_keypoints needs (width, height), a PIL image or an HxW(xC) array; got {type(obj).__name__}.")
