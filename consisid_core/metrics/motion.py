"""Motion: mean Farneback optical-flow magnitude between consecutive frames (as OpenS2V-Eval's motion score)."""

from __future__ import annotations

import cv2
import numpy as np

# pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)


def flow_magnitudes(frames_rgb: list[np.ndarray]) -> np.ndarray:
    """Mean flow magnitude (pixels per frame) of each consecutive pair: F-1 values."""
    grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames_rgb]
    out = []
    for prev, nxt in zip(grays[:-1], grays[1:]):
        flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, *FARNEBACK)
        out.append(float(np.mean(np.sqrt(flow[..., 0].astype(np.float64) ** 2 + flow[..., 1].astype(np.float64) ** 2))))
    return np.asarray(out, np.float64)
