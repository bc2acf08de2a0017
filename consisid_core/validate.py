"""Checks of user inputs that need no model: image files, output files, seeds, frame rates, server URLs.

Each check raises a ConsisIDError subclass whose message says what was wrong and what to do, so the CLI and
the batch client can refuse bad input before any model loads or any job is sent.
"""

from __future__ import annotations

import math
import os
import urllib.parse
import warnings
from pathlib import Path

from .errors import ConsisIDError, UnsupportedInputError

SEED_MODULUS = 2**64  # torch generators take 64-bit seeds; ComfyUI seed widgets span the same range
MAX_FPS = 240.0
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")  # containers that hold the H.264 stream we encode


class InputFileError(ConsisIDError, ValueError):
    """A file given on the command line or in a jobs file cannot be used (missing, not an image, not writable)."""


def normalise_seed(seed: int) -> int:
    """Seeds are taken modulo 2^64 (negative ones too), the range torch generators accept."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UnsupportedInputError(f"seed must be a whole number; got {seed!r}")
    return seed % SEED_MODULUS


def check_fps(fps: float) -> float:
    """A frame rate the encoder can honour: finite, above 0 and at most MAX_FPS."""
    if not isinstance(fps, (int, float)) or not math.isfinite(fps) or not 0 < fps <= MAX_FPS:
        raise UnsupportedInputError(f"fps must be a number above 0 and at most {MAX_FPS:g}; got {fps!r} (ConsisID videos use 8)")
    return float(fps)


def check_positive_seconds(value: float, what: str) -> float:
    """A finite duration above zero."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UnsupportedInputError(f"{what} must be a number of seconds above 0; got {value!r}")
    return float(value)


def image_problem(path: str | os.PathLike) -> str | None:
    """Why `path` is not an image file PIL can open (missing, a folder, a bomb, not an image), or None."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_file():
        return f"{path} is not a regular file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = Image.MAX_IMAGE_PIXELS or 0
        return (f"{path} declares a picture too large to open safely (a 'decompression bomb', over "
                f"{limit / 1e6:.0f} megapixels); use a normal photo, the face pipeline shrinks it to 1024 px anyway")
    except UnidentifiedImageError:
        return f"{path} is not an image PIL can read; use a PNG, JPEG or WebP photo"
    except (OSError, ValueError, SyntaxError) as exc:  # truncated/corrupt files (PIL raises SyntaxError for some)
        return f"{path} is a damaged image ({exc}); use another photo"
    if width <= 0 or height <= 0:
        return f"{path} is an empty image ({width}x{height})"
    return None


def check_image_file(path: str | os.PathLike, what: str = "face photo") -> Path:
    """Refuse a face photo that cannot be read as an image, before any model loads."""
    problem = image_problem(path)
    if problem:
        raise InputFileError(f"{what}: {problem}")
    return Path(path)


def _first_existing(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(path.anchor or ".")


def check_output_file(path: str | os.PathLike, overwrite: bool = False, suffixes: tuple[str, ...] = VIDEO_SUFFIXES,
                      option: str = "--out") -> Path:
    """An output file we may write: not a folder, a known suffix, its folder creatable and writable, and no
    existing file unless `overwrite`. Nothing is created."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputFileError(f"{option} {path} is a folder; give a file name inside it, e.g. {path / ('consisid' + suffixes[0])}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputFileError(f"{option} {path} must end in {' or '.join(suffixes)} (the video is H.264)")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise InputFileError(f"{option} {path} already exists; pass --overwrite to replace it, or choose another name")
        if not path.is_file():
            raise InputFileError(f"{option} {path} exists and is not a regular file; choose another name")
    return _check_writable_folder(path.parent, option, path)


def check_output_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """A folder we may create or write into (not a file, no file on its way)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InputFileError(f"{option} {path} is a file, not a folder; give a folder for the videos and results.jsonl")
    _check_writable_folder(path, option, path)
    return path


def _check_writable_folder(folder: Path, option: str, target: Path) -> Path:
    folder = folder if str(folder) else Path(".")
    existing = folder if folder.exists() else _first_existing(folder)
    if not existing.is_dir():
        raise InputFileError(f"{option} {target}: cannot create the folder {folder} because {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputFileError(f"{option} {target}: no permission to write in {existing}; choose another place")
    return target


def check_server_url(url: str, option: str = "--server") -> str:
    """An http(s) base URL with a host (and a valid port when one is given), without a trailing slash."""
    text = (url or "").strip()
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port  # raises ValueError for a bad port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise UnsupportedInputError(
            f"{option} {url!r} is not a server address; give an http(s) URL like http://127.0.0.1:8188"
        )
    return text.rstrip("/")
