"""Write frames to an mp4 (H.264 via the ffmpeg binary bundled with imageio-ffmpeg) and read its frame count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import ConsisIDError

DEFAULT_FPS = 8  # the reference exports ConsisID videos at 8 fps


def frames_to_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """[F, H, W, 3] float in [0, 1] (or uint8) -> uint8 array."""
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ConsisIDError(f"frames must be [F, H, W, 3]; got shape {array.shape}")
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return np.ascontiguousarray(array)


def write_mp4(frames: torch.Tensor | np.ndarray, path: str | Path, fps: float = DEFAULT_FPS, crf: int = 18) -> Path:
    """Encode frames as a yuv420p H.264 mp4 that every player opens."""
    import imageio_ffmpeg

    video = frames_to_uint8(frames)
    _, height, width, _ = video.shape
    if height % 2 or width % 2:
        raise ConsisIDError(f"H.264 needs even frame sizes; got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=None,
        output_params=["-crf", str(crf)], macro_block_size=1,
    )
    writer.send(None)
    for frame in video:
        writer.send(frame)
    writer.close()
    return path


def count_frames(path: str | Path) -> int:
    """Number of decodable frames in a video file."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # metadata
    return sum(1 for _ in reader)
