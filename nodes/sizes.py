"""Validation-time checks of width/height/num_frames against the checkpoints installed under models/consisid.

ComfyUI validates a node before anything runs, but a node's VALIDATE_INPUTS only sees its own widget
values (linked inputs such as `model` arrive as None), so it cannot know which checkpoint is wired in.
It can refuse what no installed checkpoint supports; the sampler re-checks against the loaded model
when it starts, before any work.
"""

from __future__ import annotations

from consisid_core.engine.info import ModelInfo

from . import model_folders

SIZE_MULTIPLE = 16  # VAE x8 and transformer patch 2, the same for every CogVideoX-5B checkpoint
FRAME_STEP = 8  # 4x temporal VAE: only 8k+1 frames decode to exactly that many
MIN_FRAMES = 9
MAX_SIDE = 4096
MAX_FRAMES = 1025


def _supports(info: ModelInfo, width: int, height: int) -> bool:
    return not info.learned_positions or (height, width) == (info.native_height, info.native_width)


def _describe(name: str, info: ModelInfo) -> str:
    if info.learned_positions:
        return f"{name}: {info.native_width}x{info.native_height} only (native {info.native_frames} frames)"
    return f"{name}: any multiple of {info.size_multiple} (native {info.native_width}x{info.native_height}, " \
           f"{info.native_frames} frames)"


def check(width, height, num_frames, infos: dict[str, ModelInfo] | None = None) -> str | None:
    """None when acceptable, else a message saying what is wrong and which values work."""
    problems = []
    if width is not None and height is not None:
        for name, value in (("width", width), ("height", height)):
            if not SIZE_MULTIPLE <= value <= MAX_SIDE or value % SIZE_MULTIPLE:
                problems.append(f"{name}={value} must be a multiple of {SIZE_MULTIPLE} from {SIZE_MULTIPLE} to {MAX_SIDE}")
    if num_frames is not None:
        if not MIN_FRAMES <= num_frames <= MAX_FRAMES or (num_frames - 1) % FRAME_STEP:
            below = max(MIN_FRAMES, (num_frames - 1) // FRAME_STEP * FRAME_STEP + 1)
            problems.append(
                f"num_frames={num_frames} must be {FRAME_STEP}k+1 between {MIN_FRAMES} and {MAX_FRAMES} "
                f"(e.g. {below} or {below + FRAME_STEP}; ConsisID-preview was trained on 49)"
            )
    if problems:
        return "; ".join(problems) + "."
    infos = model_folders.installed_infos() if infos is None else infos
    if width is None or height is None or not infos:
        return None
    if any(_supports(info, width, height) for info in infos.values()):
        return None
    natives = sorted({(i.native_width, i.native_height) for i in infos.values() if i.learned_positions})
    hint = " or ".join(f"width={w}, height={h}" for w, h in natives)
    return (
        f"{width}x{height} (width x height) is not supported by any installed ConsisID checkpoint: "
        + "; ".join(_describe(n, i) for n, i in sorted(infos.items()))
        + f". Set {hint}."
    )
