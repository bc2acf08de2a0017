"""Reading a user's clips (video files or folders of frames) and sampling the training window."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConsisIDError

VIDEO_EXTS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_READ_FRAMES = 2000  # a clip longer than this is read up to here (the window needs far fewer)


class ClipError(ConsisIDError):
    """A clip that cannot be used; the message is the reason written to the report."""


@dataclass(frozen=True)
class ClipSource:
    """One entry of the clips folder: a video file, a folder of frames, or something we report and skip."""

    path: Path
    kind: str  # "video", "frames", "image"

    @property
    def clip_id(self) -> str:
        return self.path.stem if self.kind != "frames" else self.path.name


def list_clips(folder: Path) -> list[ClipSource]:
    """Every clip candidate of `folder`, sorted by name (images are listed so the report can say why they are skipped)."""
    if not folder.is_dir():
        raise ConsisIDError(f"--clips must be a folder of clips (mp4/webm/mov or folders of frames); got {folder}")
    sources = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if child.is_dir():
            if any(p.suffix.lower() in IMAGE_EXTS for p in child.iterdir()):
                sources.append(ClipSource(child, "frames"))
        elif child.suffix.lower() in VIDEO_EXTS:
            sources.append(ClipSource(child, "video"))
        elif child.suffix.lower() in IMAGE_EXTS:
            sources.append(ClipSource(child, "image"))
    return sources


def read_frames(source: ClipSource) -> np.ndarray:
    """All frames [N, H, W, 3] uint8 RGB; raises ClipError for a still image or an unreadable file."""
    if source.kind == "image":
        raise ClipError("a still image, not a clip (give a video or a folder of frames)")
    if source.kind == "frames":
        files = sorted(p for p in source.path.iterdir() if p.suffix.lower() in IMAGE_EXTS)[:MAX_READ_FRAMES]
        frames = []
        for file in files:
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise ClipError(f"frame {file.name} cannot be read")
            frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        if len({f.shape for f in frames}) > 1:
            raise ClipError("its frames do not all have the same size")
        return np.stack(frames)
    return _read_video(source.path)


def _read_video(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        width, height = meta["size"]
        frames = []
        for raw in reader:
            frames.append(np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3))
            if len(frames) >= MAX_READ_FRAMES:
                break
        reader.close()
    except (RuntimeError, OSError, StopIteration, KeyError, ValueError) as exc:
        raise ClipError(f"the file cannot be decoded ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from exc
    if not frames:
        raise ClipError("the file holds no decodable frame")
    return np.stack(frames)


def is_still(frames: np.ndarray, threshold: float = 0.5) -> bool:
    """True when no frame differs from the first by more than `threshold` grey levels on average."""
    first = frames[0].astype(np.int16)
    step = max(1, len(frames) // 16)
    return all(np.abs(frames[i].astype(np.int16) - first).mean() <= threshold for i in range(0, len(frames), step))


def choose_window(num_frames: int, native: int, stride: int) -> tuple[list[int], int]:
    """Indices of `native` frames at `stride` (lowered down to 1 if the clip is short), centred in the clip."""
    for used in range(stride, 0, -1):
        span = (native - 1) * used + 1
        if num_frames >= span:
            start = (num_frames - span) // 2
            return [start + i * used for i in range(native)], used
    raise ClipError(f"too short: {num_frames} frames, the model needs at least {native} (at stride 1)")


def outside_window(num_frames: int, window: list[int], count: int, min_distance: int = 3) -> list[int]:
    """Up to `count` frame indices outside [window[0], window[-1]], at least `min_distance` from it, spread evenly."""
    lo, hi = window[0], window[-1]
    candidates = [i for i in range(num_frames) if i <= lo - min_distance or i >= hi + min_distance]
    if len(candidates) <= count:
        return candidates
    picks = np.linspace(0, len(candidates) - 1, count).round().astype(int)
    return [candidates[i] for i in picks]


def crop_box(height: int, width: int, target_h: int, target_w: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the largest centred region with the target aspect ratio."""
    scale = min(height / target_h, width / target_w)
    crop_h, crop_w = int(round(target_h * scale)), int(round(target_w * scale))
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def center_crop(frame: np.ndarray, target_h: int, target_w: int) -> np.ndarray:
    """The frame centre-cropped to the target aspect ratio, at source resolution."""
    top, left, h, w = crop_box(frame.shape[0], frame.shape[1], target_h, target_w)
    return frame[top:top + h, left:left + w]


def resize(frame: np.ndarray, target_h: int, target_w: int, nearest: bool = False) -> np.ndarray:
    """Resize a (cropped) frame or mask to the model's size (area filter when shrinking)."""
    if frame.shape[:2] == (target_h, target_w):
        return frame
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if frame.shape[0] > target_h else cv2.INTER_CUBIC)
    return cv2.resize(frame, (target_w, target_h), interpolation=interp)
