"""Write frames to an mp4 (H.264 via the ffmpeg binary bundled with imageio-ffmpeg) and read its frame count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import ConsisIDError

DEFAULT_FPS = 8  # the reference exports ConsisID videos at 8 fps


def frames_to_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """[F, H, W, 3] float in [0, 1] (or uint8; an alpha channel is composited on white) -> [F, H, W, 3] uint8,
    by the package's one image normaliser."""
    from .image_input import InvalidImageError, batch_to_rgb

    shape = tuple(frames.shape) if hasattr(frames, "shape") else np.shape(frames)
    if len(shape) != 4 or shape[-1] not in (3, 4):
        raise ConsisIDError(f"frames must be [F, H, W, 3]; got shape {shape}")
    try:
        return batch_to_rgb(frames)
    except InvalidImageError as exc:
        raise ConsisIDError(f"frames cannot be written: {exc}") from exc


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
