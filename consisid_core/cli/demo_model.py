"""`demo-model OUT`: write the random-weight model `generate --random-weights` uses into a folder to keep.

With it `generate`, `prepare-data`, `train` and the Python API can be tried without the 25 GB of weights
(every output is noise). `--clips DIR` also writes a short clip of the bundled portrait for prepare-data,
`--eval-dir DIR` random scoring models for evaluate (IR-101 and buffalo_l into OUT/face_encoder/).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import ConsisIDError

MARKER = "RANDOM_WEIGHTS.txt"
FACE = "demo_face.png"  # the bundled portrait, whose face the random detector is planted to find
CAPTION = "a person in a space suit looks into the camera in bright light"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `consisid demo-model`."""
    parser.add_argument("out", type=Path, metavar="OUT",
                        help="new folder for the model (must not exist or be empty; no default)")
    parser.add_argument("--clips", type=Path, default=None, metavar="DIR",
                        help="also write a short clip of the bundled portrait (+ caption) into DIR, for prepare-data "
                             "(default: no clips)")
    parser.add_argument("--eval-dir", type=Path, default=None, metavar="DIR",
                        help="also write random scoring models for evaluate: Inception and CLIP into DIR, IR-101 and "
                             "buffalo_l into OUT/face_encoder/ (default: none)")


def _check_new_folder(path: Path, option: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        kind = "a file" if not path.is_dir() else "a folder that is not empty"
        raise ConsisIDError(f"{option} {path} is {kind}; give a new folder (nothing is overwritten)")
    parent = path.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ConsisIDError(f"{option} {path}: cannot create it in {parent} (missing or not writable)")


def write_demo_clip(folder: Path, frames: int = 60) -> Path:
    """A slow sideways drift over the bundled portrait at the demo model's 384x256, with a caption file."""
    import cv2
    import numpy as np

    from ..demo.face_models import default_photo_bgr
    from ..video import write_mp4

    photo = cv2.cvtColor(default_photo_bgr(), cv2.COLOR_BGR2RGB)
    base = cv2.resize(photo, (384 + 32, 256), interpolation=cv2.INTER_AREA)
    offsets = np.linspace(0, 32, frames).round().astype(int)
    video = np.stack([base[:, o:o + 384] for o in offsets])
    folder.mkdir(parents=True, exist_ok=True)
    path = write_mp4(video, folder / "demo_portrait.mp4", fps=8, crf=12)
    (folder / "demo_portrait.txt").write_text(CAPTION + "\n", encoding="utf-8")
    return Path(path)


def _add_eval_models(model: Path, scratch: Path) -> Path:
    """Random scoring models: IR-101 and buffalo_l into the model's face_encoder/; returns the eval folder."""
    from ..demo.metrics_models import write_eval_models

    written = write_eval_models(scratch / "eval_models")  # .../consisid/ConsisID-preview
    for item in (written / "face_encoder").iterdir():
        target = model / "face_encoder" / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    return written.parent / "eval"


def run(args: argparse.Namespace) -> int:
    """Build into a hidden sibling folder, then rename it to OUT: an interrupted run leaves no half model."""
    from ..demo import build_demo_model

    out = Path(args.out).expanduser()
    _check_new_folder(out, "OUT")
    for option, folder in (("--clips", args.clips), ("--eval-dir", args.eval_dir)):
        if folder is not None:
            _check_new_folder(Path(folder).expanduser(), option)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        print("writing a random-weight ConsisID model (about a minute on a CPU) ...", flush=True)
        model = build_demo_model(scratch / "model")
        shutil.copy2(Path(__file__).resolve().parents[1] / "assets" / "default_face.png", model / FACE)
        (model / MARKER).write_text("Every network in this folder has RANDOM weights: its videos are noise. "
                                    "Made by `consisid demo-model` for trying the commands.\n", encoding="utf-8")
        eval_models = _add_eval_models(model, scratch) if args.eval_dir is not None else None
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        os.replace(model, out)
        if eval_models is not None:
            eval_dir = Path(args.eval_dir).expanduser()
            if eval_dir.is_dir():
                eval_dir.rmdir()
            eval_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(eval_models), str(eval_dir))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"wrote {out} (RANDOM weights: every video it makes is noise)")
    if args.clips is not None:
        clip = write_demo_clip(Path(args.clips).expanduser())
        print(f"wrote {clip} and its caption")
    if args.eval_dir is not None:
        print(f"wrote {args.eval_dir} (random Inception and CLIP) and the scoring models in {out}/face_encoder/")
    clips = args.clips or "CLIPS"
    eval_dir = args.eval_dir or "EVAL_DIR"
    print("try it:\n"
          f"  consisid generate --model {out} --steps 4 --out demo.mp4\n"
          f"  consisid prepare-data --model {out} --clips {clips} --out demo_data --mask box\n"
          f"  consisid train --model {out} --data demo_data --out demo_run --lora-rank 4 --max-steps 2 "
          "--warmup-steps 0 --checkpoint-every 1\n"
          f"  consisid generate --model {out} --steps 4 --lora demo_run/pytorch_lora_weights.safetensors "
          "--out demo_lora.mp4\n"
          f"  consisid evaluate --model {out} --eval-dir {eval_dir} --videos demo.mp4 --faces {out / FACE} "
          "--out demo_scores.csv\n"
          f"  python -c \"import consisid_core; e = consisid_core.load_engine('{out}'); print(e.info)\"")
    return 0
