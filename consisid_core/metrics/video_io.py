"""Read a video file into RGB frames (OpenCV, as the eval scripts do)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import UnsupportedInputError

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif")


def read_video(path: str | os.PathLike) -> list[np.ndarray]:
    """All frames of a video as RGB uint8 arrays; a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise UnsupportedInputError(f"Video {path} does not exist.")
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(np.ascontiguousarray(frame[:, :, ::-1]))
    finally:
        cap.release()
    if not frames:
        raise UnsupportedInputError(f"{path} could not be read as a video (no frames decoded); give an mp4/webm file.")
    return frames


def list_videos(items: list[str | os.PathLike]) -> list[Path]:
    """Video files from files and folders (folders: their video files, sorted by name, recursively)."""
    found: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found += sorted((f for f in p.rglob("*") if f.suffix.lower() in VIDEO_SUFFIXES and f.is_file()),
                            key=lambda f: str(f).lower())
        elif p.is_file():
            found.append(p)
        else:
            raise UnsupportedInputError(f"{p} does not exist (give video files or folders holding them).")
    if not found:
        raise UnsupportedInputError(f"No video files ({', '.join(VIDEO_SUFFIXES)}) in {', '.join(map(str, items))}.")
    return found
