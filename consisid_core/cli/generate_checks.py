"""Everything `generate` can check without loading a model, so bad input fails in seconds, not after loading.

`check_arguments` runs first (prompts, numbers, face photo, output path, antelopev2 folder); `check_video_settings`
runs once the model folder is known and reads only its config.json files for the native sizes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import validate
from ..errors import ConsisIDError, UnsupportedInputError
from ..text_input import check_prompt
from ..output_paths import check_output_file


def check_arguments(args: argparse.Namespace, face_path: Path) -> None:
    """Refuse bad prompts and settings, an unreadable face photo or an unusable --out before anything is loaded.

    Normalises `args.seed` (modulo 2^64) and `args.face_selection` in place.
    """
    from ..engine.checks import check_steps_and_guidance
    from ..face.selection import check_selection

    args.prompt = check_prompt(args.prompt, "--prompt")
    args.negative_prompt = check_prompt(args.negative_prompt, "--negative-prompt", allow_empty=True)
    original = args.seed
    args.seed = validate.normalise_seed(args.seed)
    if args.seed != original:
        print(f"note: seed {original} is outside 0..2^64-1; using {original} mod 2^64 = {args.seed}", flush=True)
    validate.check_guidance(args.guidance)
    check_steps_and_guidance(args.steps, args.guidance)
    if getattr(args, "cfg_parallel", False) and args.guidance <= 1.0:
        raise UnsupportedInputError(
            f"--cfg-parallel runs the two classifier-free-guidance branches on two ranks, but --guidance {args.guidance:g} "
            "turns guidance off (it needs a value above 1): drop --cfg-parallel or raise --guidance")
    validate.check_fps(args.fps)
    for name in ("width", "height"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UnsupportedInputError(f"--{name} must be a positive multiple of 16; got {value}")
    if args.frames is not None and args.frames <= 0:
        raise UnsupportedInputError(f"--frames must be a positive 8k+1 count such as 49; got {args.frames}")
    args.face_selection = check_selection(args.face_selection)
    validate.check_image_file(face_path, "--face")
    models = () if getattr(args, "random_weights", False) else (args.model,)
    check_output_file(args.out, overwrite=getattr(args, "overwrite", False), suffixes=validate.VIDEO_SUFFIXES,
                      what="the video is H.264", models=models)
    ante = args.antelopev2_dir
    if ante is not None and not Path(ante).expanduser().is_dir():
        raise ConsisIDError(
            f"--antelopev2-dir {ante} is not a folder; point it at the folder holding scrfd_10g_bnkps.onnx and "
            "glintr100.onnx (e.g. ComfyUI/models/insightface/models/antelopev2), or leave it out"
        )


def check_video_settings(model: Path, args: argparse.Namespace) -> tuple[int, int, int | None]:
    """(height, width, frames) checked against the folder's configs; frames None when the configs are unreadable
    (the file check that follows names what is missing)."""
    from ..engine import checks
    from ..model_folder import read_model_info

    info = read_model_info(model)
    if info is None:
        return args.height or 0, args.width or 0, None
    height = args.height if args.height is not None else info.native_height
    width = args.width if args.width is not None else info.native_width
    checks.check_size(info, height, width)
    frames = checks.resolve_frames(info, args.frames if args.frames is not None else info.native_frames)
    return height, width, frames


def check_antelopev2_used(antelopev2_dir: Path | None, found: Path | None) -> None:
    """An explicit --antelopev2-dir that holds no antelopev2 files must not be silently replaced by another copy."""
    if antelopev2_dir is None or found is None:
        return
    root = Path(antelopev2_dir).expanduser().resolve()
    found = Path(found).resolve()
    if found != root and root not in found.parents:
        raise ConsisIDError(
            f"--antelopev2-dir {antelopev2_dir} holds no scrfd_10g_bnkps.onnx + glintr100.onnx (also looked in its "
            f"antelopev2/ and models/antelopev2/); copy them there or leave the option out to use {found}"
        )
