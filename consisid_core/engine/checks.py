"""Validation of generation settings against what the loaded checkpoint supports."""

from __future__ import annotations

from ..errors import UnsupportedInputError
from ..notices import warn
from ..model_info import ModelInfo

MAX_LENGTH_FACTOR = 4  # frame counts up to this many times the trained length (193 for a 49-frame checkpoint)


def supported_sizes_text(info: ModelInfo) -> str:
    """Human wording of the sizes a checkpoint accepts, for error messages and UI hints."""
    if info.learned_positions:
        return f"{info.native_width}x{info.native_height} (width x height) only"
    return f"any width/height that are multiples of {info.size_multiple} (native {info.native_width}x{info.native_height})"


def check_size(info: ModelInfo, height: int, width: int) -> None:
    """Refuse sizes the checkpoint cannot generate, before diffusers fails with a confusing error."""
    if info.learned_positions and (height, width) != (info.native_height, info.native_width):
        raise UnsupportedInputError(
            f"this checkpoint has learned positional embeddings and only generates "
            f"{info.native_width}x{info.native_height} (width x height); got {width}x{height}. "
            f"Set width={info.native_width}, height={info.native_height}."
        )
    multiple = info.size_multiple
    if height <= 0 or width <= 0 or height % multiple or width % multiple:
        raise UnsupportedInputError(
            f"width and height must be positive multiples of {multiple}; got {width}x{height}."
        )


def is_valid_frame_count(info: ModelInfo, num_frames: int) -> bool:
    """True when decoding gives exactly `num_frames` frames (8k+1 for a 4x temporal VAE)."""
    step = info.frame_step
    return num_frames >= info.min_frames and (num_frames - 1) % step == 0


def snap_frames(info: ModelInfo, num_frames: int) -> int:
    """The nearest frame count for which the decoded video has exactly that many frames."""
    step = info.frame_step
    k = max(1, round((num_frames - 1) / step))
    return k * step + 1


def frame_range(info: ModelInfo) -> tuple[int, int]:
    """Smallest and largest frame count worth running on this checkpoint (both decode exactly)."""
    step = info.frame_step
    longest = max(info.native_frames, info.min_frames) - 1
    return info.min_frames, (longest * MAX_LENGTH_FACTOR) // step * step + 1


def check_frame_range(info: ModelInfo, num_frames: int) -> None:
    """Refuse frame counts far from what the checkpoint supports (zero, negative, thousands) instead of snapping."""
    low, high = frame_range(info)
    if not low <= num_frames <= high:
        raise UnsupportedInputError(
            f"num_frames={num_frames} is outside what this checkpoint supports: use {info.frame_step}k+1 "
            f"frames from {low} to {high} (native {info.native_frames})."
        )


def resolve_frames(info: ModelInfo, num_frames: int, *, snap: bool = True) -> int:
    """Return a usable frame count: snapped with a warning (`snap`) or refused; far-off counts are always refused."""
    if not isinstance(num_frames, int) or isinstance(num_frames, bool):
        raise UnsupportedInputError(f"num_frames must be an integer; got {num_frames!r}.")
    check_frame_range(info, num_frames)
    if not is_valid_frame_count(info, num_frames):
        nearest = snap_frames(info, num_frames)
        message = (
            f"num_frames={num_frames} would not decode to exactly that many frames; "
            f"use {info.frame_step}k+1 frames (e.g. {nearest}, native {info.native_frames})."
        )
        if not snap:
            raise UnsupportedInputError(message)
        warn(message + f" Using {nearest}.")
        num_frames = nearest
    if info.learned_positions and num_frames != info.native_frames:
        warn(
            f"num_frames={num_frames} differs from the checkpoint's native {info.native_frames}: its learned "
            "positional table is replaced by a computed one, so quality will drop."
        )
    return num_frames


def check_steps_and_guidance(num_inference_steps: int, guidance_scale: float) -> None:
    """Reject step counts and guidance values the scheduler cannot use."""
    if not isinstance(num_inference_steps, int) or num_inference_steps < 1 or num_inference_steps > 1000:
        raise UnsupportedInputError(f"num_inference_steps must be an integer from 1 to 1000; got {num_inference_steps!r}.")
    if guidance_scale < 0:
        raise UnsupportedInputError(f"guidance_scale must be >= 0; got {guidance_scale}.")
