"""Decide which face is the identity and which 5 points align its crop.

`reference` reproduces diffusers' consisid_utils: ArcFace from antelopev2's largest face, crop from
RetinaFace's most central face (possibly two different people). The other modes pick one person and
use them for both: the antelopev2 face, aligned with the RetinaFace detection that overlaps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from ..choices import FACE_SELECTIONS
from .boxes import iou
from .detection import DetectedFace
from .errors import FaceSelectionError

FaceSelection = Union[str, int]
MODES = FACE_SELECTIONS
MATCH_IOU = 0.3  # a RetinaFace box overlapping the chosen face at least this much is the same face


@dataclass(frozen=True)
class Choice:
    """The selected face: `identity` gives ArcFace + kps (None -> embed the crop), `align_points` the crop."""

    identity: DetectedFace | None
    align_points: np.ndarray
    aligned_with: str
    face: DetectedFace  # the face reported as bbox/kps
    face_count: int


def check_selection(selection: FaceSelection) -> FaceSelection:
    """Validate `face_selection` early with a clear message."""
    if isinstance(selection, (bool, np.bool_)) or not isinstance(selection, (str, int, np.integer)):
        raise FaceSelectionError(f"face_selection must be one of {MODES} or a 0-based face index; got {selection!r}.")
    if isinstance(selection, str):
        text = selection.strip().lower()
        if text.lstrip("-").isdigit():
            return check_selection(int(text))
        if text not in MODES:
            raise FaceSelectionError(f"face_selection must be one of {MODES} or a 0-based face index; got {selection!r}.")
        return text
    if selection < 0:
        raise FaceSelectionError(f"face_selection index must be 0 or more (faces are counted left to right); got {selection}.")
    return int(selection)


def largest_index(faces: list[DetectedFace]) -> int:
    """Largest box area; ties go to the later face (the reference's `sorted(...)[-1]`)."""
    areas = [f.area for f in faces]
    best = max(areas)
    return max(i for i, a in enumerate(areas) if a == best)


def central_index(faces: list[DetectedFace], width: int, height: int) -> int:
    """Box centre closest to the image centre; ties go to the earlier face (facexlib's get_center_face)."""
    center = np.array([width / 2, height / 2])
    dists = [np.linalg.norm(np.array([(f.bbox[0] + f.bbox[2]) / 2, (f.bbox[1] + f.bbox[3]) / 2]) - center) for f in faces]
    return dists.index(min(dists))


def left_to_right(faces: list[DetectedFace]) -> list[int]:
    """Face indices ordered by box centre x (stable)."""
    return sorted(range(len(faces)), key=lambda i: float(faces[i].bbox[0] + faces[i].bbox[2]))


def choose(primary: list[DetectedFace], landmarker: list[DetectedFace], selection: FaceSelection,
           width: int, height: int, photo_size: tuple[int, int] | None = None) -> Choice | None:
    """Pick the face in a width x height image; None when neither detector found one.

    `photo_size` (width, height) is only used in messages, when the user's photo was larger than the image.
    """
    if not primary and not landmarker:
        return None
    if selection == "reference":
        return _reference(primary, landmarker, width, height)
    pool = primary or landmarker
    if selection == "largest":
        picked = pool[largest_index(pool)]
    elif selection == "central":
        picked = pool[central_index(pool, width, height)]
    else:
        order = left_to_right(pool)
        if selection >= len(order):
            raise FaceSelectionError(
                f"face_selection={selection} but only {len(order)} face(s) were found in the "
                f"{'x'.join(map(str, photo_size or (width, height)))} image "
                f"(valid indices 0..{len(order) - 1}, counted left to right); pick a smaller index, or 'largest'/'central'."
            )
        picked = pool[order[selection]]
    if not primary:  # only RetinaFace found faces: its points align, the crop gives the embedding
        return Choice(None, picked.kps, picked.source, picked, len(pool))
    match = _best_overlap(picked, landmarker)
    if match is None:  # RetinaFace (threshold 0.97) missed this face: align with antelopev2's own points
        return Choice(picked, picked.kps, picked.source, picked, len(pool))
    return Choice(picked, match.kps, match.source, picked, len(pool))


def _reference(primary: list[DetectedFace], landmarker: list[DetectedFace], width: int, height: int) -> Choice:
    ident = primary[largest_index(primary)] if primary else None
    crop = landmarker[central_index(landmarker, width, height)] if landmarker else None
    count = len(primary or landmarker)
    if crop is None:  # the reference raises "facexlib align face fail" here; we align with antelopev2's points
        return Choice(ident, ident.kps, ident.source, ident, count)
    return Choice(ident, crop.kps, crop.source, ident or crop, count)


def _best_overlap(face: DetectedFace, candidates: list[DetectedFace]) -> DetectedFace | None:
    if not candidates:
        return None
    overlaps = iou(face.bbox, np.stack([c.bbox for c in candidates]))
    best = int(np.argmax(overlaps))
    return candidates[best] if overlaps[best] >= MATCH_IOU else None
