"""Find the face model files on disk (never download); one clear error lists everything that is missing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import catalog
from .errors import FaceWeightsError

SCRFD_FILE = "scrfd_10g_bnkps.onnx"
GLINTR100_FILE = "glintr100.onnx"
ANTELOPEV2_REQUIRED = (SCRFD_FILE, GLINTR100_FILE)  # the rest of the pack is not needed by ConsisID
FACE_ENCODER_FILES = (catalog.RETINAFACE_FILE, catalog.BISENET_FILE, catalog.EVA_CLIP_FILE)


@dataclass(frozen=True)
class FaceWeightFiles:
    """Resolved paths of every file the face pipeline loads."""

    face_encoder_dir: Path
    retinaface: Path
    bisenet: Path
    eva_clip: Path
    antelopev2_dir: Path

    @property
    def scrfd(self) -> Path:
        return self.antelopev2_dir / SCRFD_FILE

    @property
    def glintr100(self) -> Path:
        return self.antelopev2_dir / GLINTR100_FILE


def locate_face_weights(path: str | os.PathLike, antelopev2_dir: str | os.PathLike | None = None) -> FaceWeightFiles:
    """Resolve the files from a `face_encoder/` folder or its model folder, plus an optional shared antelopev2 folder."""
    face_dir = _face_encoder_dir(Path(path).expanduser())
    ante_candidates = _antelopev2_candidates(face_dir, antelopev2_dir)
    ante_dir = next((d for d in ante_candidates if all((d / f).is_file() for f in ANTELOPEV2_REQUIRED)), None)

    missing = [face_dir / f for f in FACE_ENCODER_FILES if not (face_dir / f).is_file()]
    if ante_dir is None:
        missing += [ante_candidates[0] / f for f in ANTELOPEV2_REQUIRED if not (ante_candidates[0] / f).is_file()]
    if missing:
        searched = list(dict.fromkeys([face_dir, *ante_candidates]))
        raise FaceWeightsError(_missing_message(missing, searched, ante_candidates), missing, searched)
    return FaceWeightFiles(
        face_encoder_dir=face_dir,
        retinaface=face_dir / catalog.RETINAFACE_FILE,
        bisenet=face_dir / catalog.BISENET_FILE,
        eva_clip=face_dir / catalog.EVA_CLIP_FILE,
        antelopev2_dir=ante_dir,
    )


def _face_encoder_dir(path: Path) -> Path:
    """Accept the model folder (parent of face_encoder/) as well as face_encoder/ itself."""
    nested = path / catalog.FACE_ENCODER_DIR
    if path.name != catalog.FACE_ENCODER_DIR and nested.is_dir():
        return nested
    return path


def _antelopev2_candidates(face_dir: Path, explicit: str | os.PathLike | None) -> list[Path]:
    """Folders that may hold the antelopev2 .onnx files, in search order."""
    candidates = []
    if explicit is not None:
        root = Path(explicit).expanduser()
        candidates.append(root)  # .../insightface/models/antelopev2 itself
        if root.name != "antelopev2":  # ...antelopev2/antelopev2 is the nested-unzip mistake, reported instead
            candidates += [root / "antelopev2", root / "models" / "antelopev2"]  # .../models or .../insightface
    candidates.append(face_dir.joinpath(*catalog.ANTELOPEV2_SUBDIR))
    return list(dict.fromkeys(candidates))


def _missing_message(missing: list[Path], searched: list[Path], ante_candidates: list[Path]) -> str:
    lines = [f"ConsisID face models are incomplete: {len(missing)} file(s) missing (nothing is downloaded automatically)."]
    if not searched[0].is_dir():
        lines.append(f"  the folder {searched[0]} does not exist: pass the ConsisID-preview model folder or its face_encoder/.")
    for candidate in ante_candidates:
        nested = candidate / "antelopev2"
        if candidate.name == "antelopev2" and any((nested / f).is_file() for f in ANTELOPEV2_REQUIRED):
            lines.append(
                f"  Found the antelopev2 files one folder too deep in {nested} (a nested antelopev2/antelopev2/, "
                f"a common unzip mistake): move the .onnx files up into {candidate}."
            )
    lines += [f"  missing: {p}" for p in missing]
    lines.append("  searched: " + ", ".join(str(d) for d in searched))
    lines.append(
        f"  get them from: {catalog.HF_URL}/tree/main/{catalog.FACE_ENCODER_DIR} (the whole face_encoder/ folder, "
        f"antelopev2 is in face_encoder/models/antelopev2/); antelopev2 also from {catalog.INSIGHTFACE_ANTELOPEV2_URL} "
        "(unzip into ComfyUI/models/insightface/models/antelopev2/)."
    )
    return "\n".join(lines)
