"""Find and follow the one person of a clip with our face pipeline; face masks per frame; reference faces."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..face import NoFaceError, extract_identity
from ..face.align import alignment_matrix, warp_face, FACE_SIZE
from ..face.boxes import iou
from ..face.detection import DetectedFace
from ..face.models import FaceModels
from ..face.parsing import background_mask, crop_to_tensor
from ..face.selection import choose

TRACK_IOU = 0.1  # a detection overlapping the previous box less than this is another person (or none)


def detect_track(models: FaceModels, frames: list[np.ndarray], selection="largest") -> list[DetectedFace | None]:
    """One face per frame: the selected face in the first frame that has one, then the best-overlapping one."""
    track: list[DetectedFace | None] = []
    previous: DetectedFace | None = None
    for rgb in frames:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        faces = models.detector.detect(bgr) or models.landmarker.detect(bgr)
        picked = None
        if faces and previous is None:
            choice = choose(faces, [], selection, rgb.shape[1], rgb.shape[0])
            picked = choice.face if choice is not None else None
        elif faces:
            overlaps = iou(previous.bbox, np.stack([f.bbox for f in faces]))
            best = int(np.argmax(overlaps))
            picked = faces[best] if overlaps[best] >= TRACK_IOU else None
        track.append(picked)
        previous = picked or previous
    return track


def box_mask(shape: tuple[int, int], bbox: np.ndarray) -> np.ndarray:
    """[H, W] float32 mask of a face box (the fallback when parsing finds no face region)."""
    mask = np.zeros(shape, dtype=np.float32)
    x0, y0, x1, y1 = np.round(np.asarray(bbox, dtype=np.float64)).astype(int)
    mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = 1.0
    return mask


def parsed_mask(models: FaceModels, rgb: np.ndarray, face: DetectedFace) -> np.ndarray | None:
    """Face region (BiSeNet: skin, brows, eyes, nose, mouth, hair) mapped back into the frame, or None."""
    matrix = alignment_matrix(face.kps)
    if matrix is None:
        return None
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    crop = warp_face(bgr, matrix)
    with torch.inference_mode():
        region = ~background_mask(models.parser, crop_to_tensor(crop, models.device))
    aligned = region[0, 0].float().cpu().numpy()
    inverse = cv2.invertAffineTransform(matrix)
    back = cv2.warpAffine(aligned, inverse, (rgb.shape[1], rgb.shape[0]), flags=cv2.INTER_LINEAR, borderValue=0.0)
    box_area = max(1.0, float((face.bbox[2] - face.bbox[0]) * (face.bbox[3] - face.bbox[1])))
    area = float((back > 0.5).sum())
    if area < 0.1 * box_area or area > 6.0 * box_area:  # nothing found, or the whole crop: not a face region
        return None
    return (back > 0.5).astype(np.float32)


def face_masks(models: FaceModels, frames: list[np.ndarray], track: list[DetectedFace | None],
               method: str = "parse") -> tuple[np.ndarray, int]:
    """[F, H, W] float32 masks (frames without a face take the nearest detected frame's) and how many fell back to boxes."""
    height, width = frames[0].shape[:2]
    found = [i for i, face in enumerate(track) if face is not None]
    masks = np.zeros((len(frames), height, width), dtype=np.float32)
    fallbacks = 0
    own: dict[int, np.ndarray] = {}
    for i in found:
        mask = parsed_mask(models, frames[i], track[i]) if method == "parse" else None
        if mask is None:
            fallbacks += method == "parse"
            mask = box_mask((height, width), track[i].bbox)
        own[i] = mask
    for i in range(len(frames)):
        nearest = min(found, key=lambda j: (abs(j - i), j))
        masks[i] = own[nearest]
    return masks, fallbacks


def reference_identities(models: FaceModels, frames: list[np.ndarray], order: list[int], count: int, selection="largest"):
    """Identities of up to `count` frames, trying them in `order`; returns [(frame index, Identity)]."""
    found = []
    for i in order:
        try:
            found.append((i, extract_identity(models, frames[i], face_selection=selection)))
        except NoFaceError:
            continue
        if len(found) >= count:
            break
    return found


__all__ = ["FACE_SIZE", "box_mask", "detect_track", "face_masks", "parsed_mask", "reference_identities"]
