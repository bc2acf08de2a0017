"""The evaluation protocol's frame choice and input checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..choices import SCORE_PROTOCOLS as PROTOCOLS
from ..errors import UnsupportedInputError
from ..image_input import batch_to_rgb

NUM_FRAMES = 16


def face_frame_indices(total: int, protocol: str = "fixed", count: int = NUM_FRAMES) -> np.ndarray:
    """`linspace(0, total-1, 16, dtype=int)`; the fixed protocol drops the repeats short videos produce."""
    idx = np.linspace(0, total - 1, count, dtype=int)
    return idx if protocol == "consisid" else np.unique(idx)


def clip_frame_indices(total: int, protocol: str = "fixed", count: int = NUM_FRAMES) -> np.ndarray:
    """`int(i * total / 16)` as in the CLIPScore script; fixed drops repeats."""
    idx = np.array([int(i * total / count) for i in range(count)], dtype=int)
    return idx if protocol == "consisid" else np.unique(idx)


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise UnsupportedInputError(f"Unknown scoring protocol {protocol!r}; use 'fixed' (default) or 'consisid'.")
    return protocol


def video_frames(frames: Any) -> list[np.ndarray]:
    """A video as RGB uint8 frames: a list of HxWx3 arrays or a [F,H,W,3] tensor/array (float in [0,1] or uint8)."""
    if type(frames).__module__.startswith("torch") and hasattr(frames, "detach"):
        frames = frames.detach().cpu().float().numpy() if frames.is_floating_point() else frames.detach().cpu().numpy()
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise UnsupportedInputError("The video has no frames.")
        shapes = {tuple(np.shape(f)) for f in frames}
        if len(shapes) != 1:
            raise UnsupportedInputError(f"The video's frames differ in size ({sorted(shapes)[:3]}); give equal-size frames.")
        frames = np.stack([np.asarray(f) for f in frames])
    if not isinstance(frames, np.ndarray):
        raise UnsupportedInputError(f"A video must be a list of HxWx3 frames or a [F,H,W,3] array/tensor; got {type(frames).__name__}.")
    if frames.ndim == 3 and frames.shape[-1] in (3, 4):
        raise UnsupportedInputError(f"Got one image of shape {frames.shape}, not a video: give [F,H,W,3] frames (F >= 2).")
    if frames.ndim == 3 or (frames.ndim == 4 and frames.shape[-1] == 1):
        raise UnsupportedInputError(f"The video is grayscale (shape {frames.shape}); give RGB frames [F,H,W,3].")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UnsupportedInputError(f"A video must be [F,H,W,3] RGB frames; got shape {frames.shape}.")
    if frames.shape[0] < 2:
        raise UnsupportedInputError(f"The video has {frames.shape[0]} frame; scoring (motion, frame sampling) needs at least 2.")
    if min(frames.shape[1:3]) < 16:
        raise UnsupportedInputError(f"The video's frames are {frames.shape[2]}x{frames.shape[1]}: too small to hold a face.")
    if frames.dtype != np.uint8 and not np.issubdtype(frames.dtype, np.floating):
        raise UnsupportedInputError(f"Unsupported pixel type {frames.dtype}; give uint8 or float frames in [0,1].")
    return list(batch_to_rgb(frames))  # the package's one image normaliser (same rule as photos and canvas images)
