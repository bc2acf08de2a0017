"""Checks of the sampler's width/height/num_frames against the checkpoints installed under models/consisid.

ComfyUI validates a node before anything runs, but a node's validate_inputs only sees its own widget
values (linked inputs such as `model` arrive as None), so it cannot know which checkpoint is wired in.
It can refuse what no installed checkpoint supports; the sampler re-checks against the loaded model
when it starts, before any work. Every message names only the values that are wrong.
"""

from __future__ import annotations

from consisid_core.engine.checks import frame_range
from consisid_core.model_info import ModelInfo

from . import model_folders

FAMILY = ModelInfo.from_configs({}, {})  # ConsisID-preview's configs' values: the rules before a checkpoint is known
SIZE_MULTIPLE = FAMILY.size_multiple  # VAE x8 and transformer patch 2
FRAME_STEP = FAMILY.frame_step  # 4x temporal VAE: only 8k+1 frames decode to exactly that many
MIN_FRAMES = FAMILY.min_frames
MAX_SIDE = 4096
MAX_FRAMES = 1025
RANGES = {"width": (SIZE_MULTIPLE, MAX_SIDE), "height": (SIZE_MULTIPLE, MAX_SIDE), "num_frames": (MIN_FRAMES, MAX_FRAMES)}


def in_range(name: str, value: int) -> bool:
    low, high = RANGES[name]
    return low <= value <= high


def value_problems(width, height, num_frames, *, ranges: bool = True) -> list[str]:
    """One line per wrong value (None = unknown, not checked); `ranges=False` leaves min/max to ComfyUI."""
    problems = []
    for name, value in (("width", width), ("height", height)):
        if value is None or (not ranges and not in_range(name, value)):
            continue
        if not in_range(name, value) or value % SIZE_MULTIPLE:
            problems.append(f"{name}={value} must be a multiple of {SIZE_MULTIPLE} from {SIZE_MULTIPLE} to {MAX_SIDE}")
    if num_frames is not None and (ranges or in_range("num_frames", num_frames)):
        if not in_range("num_frames", num_frames) or (num_frames - 1) % FRAME_STEP:
            below = max(MIN_FRAMES, (num_frames - 1) // FRAME_STEP * FRAME_STEP + 1)
            problems.append(
                f"num_frames={num_frames} must be {FRAME_STEP}k+1 between {MIN_FRAMES} and {MAX_FRAMES} "
                f"(e.g. {below} or {below + FRAME_STEP}; ConsisID-preview was trained on 49)"
            )
    return problems


def _supports(info: ModelInfo, width: int, height: int) -> bool:
    return not info.learned_positions or (height, width) == (info.native_height, info.native_width)


def _describe(name: str, info: ModelInfo) -> str:
    if info.learned_positions:
        return f"{name}: {info.native_width}x{info.native_height} only, native {info.native_frames} frames"
    return f"{name}: any multiple of {info.size_multiple}, native {info.native_width}x{info.native_height}x" \
           f"{info.native_frames}"


def support_problem(width: int, height: int, infos: dict[str, ModelInfo]) -> str | None:
    """None when some installed checkpoint generates width x height, else a message naming only the wrong side(s)."""
    if not infos or any(_supports(info, width, height) for info in infos.values()):
        return None
    fixes = []  # per native size: the values to change, fewest first
    for w, h in sorted({(i.native_width, i.native_height) for i in infos.values()}):
        fixes.append([(n, v) for n, v, own in (("width", w, width), ("height", h, height)) if v != own])
    fixes.sort(key=len)
    wrong = ", ".join(f"{n}={dict(width=width, height=height)[n]}" for n, _ in fixes[0])
    hint = " (or " + "; ".join(", ".join(f"{n}={v}" for n, v in f) for f in fixes[1:]) + ")" if fixes[1:] else ""
    return (
        f"{wrong} is not supported by any installed ConsisID checkpoint ("
        + "; ".join(_describe(n, i) for n, i in sorted(infos.items()))
        + f"). Set {', '.join(f'{n}={v}' for n, v in fixes[0])}{hint}."
    )


def frames_problem(num_frames: int, infos: dict[str, ModelInfo]) -> str | None:
    """None when some installed checkpoint supports `num_frames`, else a message with their supported ranges."""
    if not infos or num_frames is None:
        return None
    spans = {name: frame_range(info) for name, info in infos.items()}
    if any(low <= num_frames <= high for low, high in spans.values()):
        return None
    described = "; ".join(f"{name}: {low} to {high}, native {infos[name].native_frames}"
                          for name, (low, high) in sorted(spans.items()))
    return (f"num_frames={num_frames} is outside what the installed ConsisID checkpoints support ({described}); "
            f"use {FRAME_STEP}k+1 frames within that range.")


def check(width, height, num_frames, infos: dict[str, ModelInfo] | None = None, *, ranges: bool = True) -> str | None:
    """None when acceptable, else one message naming each wrong value and which values work.

    `infos` are the checkpoints to check against (None: the installed ones; {}: none, structure only).
    """
    problems = value_problems(width, height, num_frames, ranges=ranges)
    if problems:
        return "; ".join(problems) + "."
    infos = model_folders.installed_infos() if infos is None else infos
    if num_frames is not None and in_range("num_frames", num_frames):
        problem = frames_problem(num_frames, infos)
        if problem is not None:
            return problem
    if width is None or height is None or not (in_range("width", width) and in_range("height", height)):
        return None
    return support_problem(width, height, infos)
