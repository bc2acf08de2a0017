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

from .errors import InputFileError as InputFileError, UnsupportedInputError

SEED_MODULUS = 2**64  # torch generators take 64-bit seeds; ComfyUI seed widgets span the same range
MAX_FPS = 240.0
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")  # containers that hold the H.264 stream we encode


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


def check_output_file(path: str | os.PathLike, overwrite: bool = False, suffixes: tuple[str, ...] = VIDEO_SUFFIXES,
                      option: str = "--out") -> Path:
    """An output video file we may write (the rules of consisid_core.output_paths). Nothing is created."""
    from .output_paths import check_output_file as check

    return check(path, option=option, overwrite=overwrite, suffixes=suffixes, what="the video is H.264")


def check_output_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """A folder for videos and results.jsonl we may create or write into (not a file, no file on its way)."""
    from .output_paths import check_output_folder as check

    return check(path, option=option, purpose="the videos and results.jsonl")


# ---------------------------------------------------------------- numbers: finite and in range, the range in the message

MAX_GUIDANCE = 30.0  # the Sampler node's cfg range
LORA_STRENGTH_RANGE = (-4.0, 4.0)  # the LoRA node's strength range


def _range_text(low: float | None, high: float | None, low_open: bool) -> str:
    if low is not None and high is not None:
        return f"above {low:g} and at most {high:g}" if low_open else f"from {low:g} to {high:g}"
    if low is not None:
        return f"above {low:g}" if low_open else f"{low:g} or more"
    return f"at most {high:g}" if high is not None else "finite"


def check_number(value: float, option: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, hint: str = "") -> float:
    """A finite number in [low, high] ((low, high] with `low_open`); NaN and infinities are always refused."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        raise UnsupportedInputError(f"{option} must be a finite number {_range_text(low, high, low_open)}"
                                    f"{f' ({hint})' if hint else ''}; got {value!r}")
    return float(value)


def check_whole(value: int, option: str, low: int | None = None, high: int | None = None, hint: str = "") -> int:
    """A whole number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low) \
            or (high is not None and value > high):
        span = f"from {low} to {high}" if low is not None and high is not None else (
            f"{low} or more" if low is not None else f"at most {high}")
        raise UnsupportedInputError(f"{option} must be a whole number {span}{f' ({hint})' if hint else ''}; got {value!r}")
    return value


def check_guidance(value: float, option: str = "--guidance") -> float:
    """Classifier-free guidance: finite, 0 to MAX_GUIDANCE (1 or less turns guidance off)."""
    return check_number(value, option, 0.0, MAX_GUIDANCE, hint="1 or less turns guidance off; ConsisID uses 6")


def check_lora_strength(value: float, option: str = "--lora") -> float:
    """A LoRA strength in the LoRA node's range."""
    return check_number(value, option + " strength", *LORA_STRENGTH_RANGE, hint="0 = the model as loaded")


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
