"""Warp a face onto the FFHQ 512x512 five-point template, exactly like facexlib's align_warp_face."""

from __future__ import annotations

import cv2
import numpy as np

FACE_SIZE = 512
# eye, eye, nose, mouth corner, mouth corner of an FFHQ-aligned 512x512 face (float64 like facexlib)
FFHQ_TEMPLATE = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043], [313.08905, 371.15118]]
)
BORDER_BGR = (135, 133, 132)  # facexlib's grey border, given in the BGR order of the image it warps


def alignment_matrix(landmarks: np.ndarray) -> np.ndarray | None:
    """2x3 similarity transform from 5 points to the template (LMEDS, as the reference), or None if degenerate."""
    pts = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    if not np.isfinite(pts).all():
        return None
    return cv2.estimateAffinePartial2D(pts, FFHQ_TEMPLATE, method=cv2.LMEDS)[0]


def warp_face(image_bgr: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The 512x512 BGR crop (grey border where the photo ends)."""
    return cv2.warpAffine(image_bgr, matrix, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_BGR)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to Nx2 points (float32 result)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def alignment_error(landmarks: np.ndarray, matrix: np.ndarray) -> float:
    """RMS distance (in template pixels) between the warped points and the template: lower = cleaner alignment."""
    diff = transform_points(landmarks, matrix).astype(np.float64) - FFHQ_TEMPLATE
    return float(np.sqrt((diff**2).sum(axis=1).mean()))
