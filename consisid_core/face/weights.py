"""Find the face model files on disk (never download); one clear error lists everything that is missing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .. import catalog, model_folder
from ..model_folder import ANTELOPEV2_REQUIRED, FACE_ENCODER_FILES, Antelopev2Location
from .errors import FaceWeightsError

SCRFD_FILE, GLINTR100_FILE = ANTELOPEV2_REQUIRED

__all__ = ["ANTELOPEV2_REQUIRED", "FACE_ENCODER_FILES", "FaceWeightFiles", "locate_face_weights"]


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


def locate_face_weights(
    path: str | os.PathLike,
    antelopev2_dir: str | os.PathLike | None = None,
    insightface_dirs: Sequence[str | os.PathLike] = (),
) -> FaceWeightFiles:
    """Resolve the files from a `face_encoder/` folder or its model folder.

    antelopev2 is searched in `antelopev2_dir` (a shared copy), the model's face_encoder/models/antelopev2,
    then ComfyUI's `insightface_dirs` (see consisid_core.model_folder.antelopev2_candidates).
    """
    face_dir = model_folder.face_encoder_dir(path)
    ante = model_folder.locate_antelopev2(face_dir, insightface_dirs, antelopev2_dir)
    missing = [face_dir / f for f in FACE_ENCODER_FILES if not (face_dir / f).is_file()]
    if ante.directory is None:
        where = ante.partial or ante.candidates[0]
        missing += [where / f for f in ANTELOPEV2_REQUIRED if not (where / f).is_file()]
    if missing:
        searched = list(dict.fromkeys([face_dir, *ante.candidates]))
        raise FaceWeightsError(_missing_message(missing, searched, ante), missing, searched)
    return FaceWeightFiles(
        face_encoder_dir=face_dir,
        retinaface=face_dir / catalog.RETINAFACE_FILE,
        bisenet=face_dir / catalog.BISENET_FILE,
        eva_clip=face_dir / catalog.EVA_CLIP_FILE,
        antelopev2_dir=ante.directory,
    )


def _missing_message(missing: list[Path], searched: list[Path], ante: Antelopev2Location) -> str:
    lines = [f"ConsisID face models are incomplete: {len(missing)} file(s) missing (nothing is downloaded automatically)."]
    if not searched[0].is_dir():
        lines.append(f"  the folder {searched[0]} does not exist: pass the ConsisID-preview model folder or its face_encoder/.")
    if ante.nested is not None:
        lines.append(
            f"  Found the antelopev2 files one folder too deep in {ante.nested / model_folder.ANTELOPEV2_NAME} (a nested "
            f"antelopev2/antelopev2/, a common unzip mistake): move the .onnx files up into {ante.nested}."
        )
    lines += [f"  missing: {p}" for p in missing]
    lines.append("  searched: " + ", ".join(str(d) for d in searched))
    lines.append(
        f"  get them from: {catalog.HF_URL}/tree/main/{catalog.FACE_ENCODER_DIR} (the whole face_encoder/ folder, "
        f"antelopev2 is in face_encoder/models/antelopev2/); antelopev2 also from {catalog.INSIGHTFACE_ANTELOPEV2_URL} "
        "(unzip into ComfyUI/models/insightface/models/antelopev2/)."
    )
    return "\n".join(lines)
