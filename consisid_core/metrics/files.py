"""Where the scoring models live on disk (never downloaded); one error lists everything missing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import catalog, model_folder
from ..errors import ModelFilesError
from .inception import INCEPTION_FILE, INCEPTION_URL
from .ir101 import IR101_FILE

BUFFALO_L = "buffalo_l"
BUFFALO_DET_FILE = "det_10g.onnx"
BUFFALO_REC_FILE = "w600k_r50.onnx"
BUFFALO_L_REQUIRED = (BUFFALO_DET_FILE, BUFFALO_REC_FILE)  # the landmark/age models do not change the scores
BUFFALO_L_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"
CLIP_DIR = "clip-vit-base-patch32"
CLIP_URL = "https://huggingface.co/openai/clip-vit-base-patch32"
CLIP_REQUIRED = ("config.json", "model.safetensors", "preprocessor_config.json", "vocab.json", "merges.txt")
EVAL_DIR = "eval"  # models/consisid/eval/


class EvalFilesError(ModelFilesError):
    """Scoring model files are missing; `missing` lists the paths."""

    def __init__(self, message: str, missing: tuple = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


@dataclass(frozen=True)
class EvalFiles:
    """Resolved paths of the four scoring models."""

    buffalo_l_dir: Path
    ir101: Path
    inception: Path
    clip_dir: Path

    @property
    def detector(self) -> Path:
        return self.buffalo_l_dir / BUFFALO_DET_FILE

    @property
    def recognizer(self) -> Path:
        return self.buffalo_l_dir / BUFFALO_REC_FILE


def face_encoder_folder(path: str | os.PathLike) -> Path:
    """Accept a ConsisID model folder as well as its `face_encoder/` (the rule of consisid_core.model_folder)."""
    return model_folder.face_encoder_dir(path)


def buffalo_candidates(face_dir: Path, explicit: str | os.PathLike | None) -> list[Path]:
    """Folders that may hold buffalo_l, in search order (an explicit folder may be the pack itself or a parent)."""
    found = []
    if explicit is not None:
        root = Path(explicit).expanduser()
        found.append(root)
        if root.name != BUFFALO_L:
            found += [root / BUFFALO_L, root / "models" / BUFFALO_L]
    found.append(face_dir / "models" / BUFFALO_L)
    return list(dict.fromkeys(found))


def eval_candidates(face_dir: Path, eval_dir: str | os.PathLike | None) -> list[Path]:
    """Folders that may hold the Inception file and the CLIP folder."""
    if eval_dir is not None:
        return [Path(eval_dir).expanduser()]
    model_dir = face_dir.parent
    return list(dict.fromkeys([model_dir.parent / EVAL_DIR, model_dir / EVAL_DIR, model_dir / "data_process"]))


def _torch_hub_checkpoints() -> Path:
    """Where torchvision itself keeps downloaded weights (read only, if the user already has the file there)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "torch")
    return Path(home) / "hub" / "checkpoints"


def locate_eval_files(face_encoder_dir: str | os.PathLike, eval_dir: str | os.PathLike | None = None,
                      buffalo_l_dir: str | os.PathLike | None = None) -> EvalFiles:
    """Resolve every scoring file or raise one EvalFilesError naming each missing file and where to get it."""
    face_dir = face_encoder_folder(face_encoder_dir)
    buffalo = buffalo_candidates(face_dir, buffalo_l_dir)
    evals = eval_candidates(face_dir, eval_dir)
    buffalo_dir = next((d for d in buffalo if all((d / f).is_file() for f in BUFFALO_L_REQUIRED)), None)
    inception = next((d / INCEPTION_FILE for d in [*evals, _torch_hub_checkpoints()] if (d / INCEPTION_FILE).is_file()), None)
    clip_dir = next((d / CLIP_DIR for d in evals if all((d / CLIP_DIR / f).is_file() for f in CLIP_REQUIRED)), None)

    missing: list[tuple[Path, str]] = []
    if buffalo_dir is None:
        missing += [(buffalo[0] / f, f"insightface buffalo_l pack: {BUFFALO_L_URL} (unzip into {buffalo[0]}, or "
                     "ComfyUI/models/insightface/models/buffalo_l/)") for f in BUFFALO_L_REQUIRED if not (buffalo[0] / f).is_file()]
    if not (face_dir / IR101_FILE).is_file():
        missing.append((face_dir / IR101_FILE, f"{catalog.HF_URL}/tree/main/{catalog.FACE_ENCODER_DIR}"))
    if inception is None:
        missing.append((evals[0] / INCEPTION_FILE, INCEPTION_URL))
    if clip_dir is None:
        missing += [(evals[0] / CLIP_DIR / f, f"{CLIP_URL}/tree/main") for f in CLIP_REQUIRED
                    if not (evals[0] / CLIP_DIR / f).is_file()]
    if missing:
        searched = list(dict.fromkeys([face_dir, *buffalo, *evals]))
        lines = [f"ConsisID scoring models are incomplete: {len(missing)} file(s) missing (nothing is downloaded)."]
        lines += [f"  missing: {path}  <- {source}" for path, source in missing]
        lines.append("  searched: " + ", ".join(str(d) for d in searched))
        raise EvalFilesError("\n".join(lines), tuple(p for p, _ in missing))
    return EvalFiles(buffalo_dir, face_dir / IR101_FILE, inception, clip_dir)
