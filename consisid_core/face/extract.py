"""Photo -> FaceReading (one read: detect, align, ArcFace, parse) -> Identity (EVA-CLIP): the reference's
process_face_embeddings_infer(is_align_face=True), made robust."""

from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import numpy as np
import torch

from ..cancel import CancelHook, checkpoint
from ..image_input import load_rgb
from .align import alignment_error, alignment_matrix, transform_points, warp_face
from .errors import NoFaceError
from .eva_clip import preprocess
from .identity import FaceReading, Identity
from .models import FaceModels
from .parsing import crop_to_tensor, face_on_white, to_uint8_image
from .resize import resize_long_edge
from .selection import FaceSelection, check_selection, choose

MIN_SIDE = 16  # below this no detector can see a face; fail fast with a clear message


def extract_identity(models: FaceModels, image: Any, face_selection: FaceSelection = "largest",
                     should_cancel: CancelHook | None = None) -> Identity | list[Identity]:
    """Identity of the selected face in `image` (a list, or a [B,H,W,C] batch with B > 1, gives a list).

    One read of each photo: `read_face` (detect, align, ArcFace, parse) then `encode_identity` (EVA-CLIP), the
    same two steps the nodes run as Face Crop&Align and Local Extractor.
    face_selection: "largest" (default), "central", a 0-based index counted left to right, or "reference"
    (exactly the reference's choice: ArcFace of the largest face, crop of the most central one).
    Raises NoFaceError when no face is found, FaceSelectionError for an index past the last face.
    `should_cancel` (see consisid_core.cancel) is checked before every model call.
    """
    readings = read_face(models, image, face_selection, should_cancel)
    if isinstance(readings, list):
        return [encode_identity(models, r, should_cancel) for r in readings]
    return encode_identity(models, readings, should_cancel)


def read_face(models: FaceModels, image: Any, face_selection: FaceSelection = "largest",
              should_cancel: CancelHook | None = None) -> FaceReading | list[FaceReading]:
    """Detect, align, ArcFace-embed and parse the selected face: the only place a photo is read and searched.

    Accepts what `extract_identity` accepts (a list or a [B,H,W,C] batch with B > 1 gives a list).
    """
    selection = check_selection(face_selection)
    if hasattr(models, "onload"):
        models.onload()
    if isinstance(image, (list, tuple)) or _is_batch(image):
        return [_read_one(models, item, selection, should_cancel) for item in image]
    return _read_one(models, image, selection, should_cancel)


def encode_identity(models: FaceModels, reading: FaceReading, should_cancel: CancelHook | None = None) -> Identity:
    """EVA-CLIP on the parsed face, joined to the ArcFace embedding: the identity features of one read face."""
    checkpoint(should_cancel)
    if hasattr(models, "onload"):
        models.onload()
    with torch.inference_mode():
        pixels = preprocess(reading.parsed_face.to(models.device), models.eva.image_size, models.dtype)
        clip_embed, hidden = models.eva(pixels)
        clip_embed = clip_embed / torch.norm(clip_embed, 2, 1, True)
        arcface_t = torch.from_numpy(np.asarray(reading.arcface, dtype=np.float32)).reshape(1, -1).to(models.device, models.dtype)
        id_cond = torch.cat([arcface_t, clip_embed], dim=-1)
    fields = {f.name: getattr(reading, f.name) for f in dataclasses.fields(reading)}
    del fields["arcface"], fields["parsed_face"]
    return Identity(id_cond=id_cond.float().cpu(), id_vit_hidden=[h.float().cpu() for h in hidden], **fields)


def _is_batch(image: Any) -> bool:
    return isinstance(image, (torch.Tensor, np.ndarray)) and image.ndim == 4 and image.shape[0] > 1


def _read_one(models: FaceModels, image: Any, selection: FaceSelection,
              should_cancel: CancelHook | None = None) -> FaceReading:
    checkpoint(should_cancel)
    rgb = load_rgb(image)
    src_h, src_w = rgb.shape[:2]
    if min(src_h, src_w) < MIN_SIDE:
        raise _no_face(src_w, src_h, f"the image is smaller than {MIN_SIDE} px on a side")
    work = resize_long_edge(rgb)
    work_h, work_w = work.shape[:2]
    bgr = cv2.cvtColor(work, cv2.COLOR_RGB2BGR)

    faces = models.detector.detect(bgr)
    checkpoint(should_cancel)
    landmarks = models.landmarker.detect(bgr)
    checkpoint(should_cancel)
    choice = choose(faces, landmarks, selection, work_w, work_h, photo_size=(src_w, src_h))
    if choice is None:
        raise _no_face(src_w, src_h, "neither the antelopev2 nor the RetinaFace detector found a face")
    matrix = alignment_matrix(choice.align_points)
    if matrix is None:
        raise _no_face(src_w, src_h, "the face's landmarks could not be aligned")
    crop_bgr = warp_face(bgr, matrix)

    if choice.identity is not None:
        arcface = models.recognizer.embed(bgr, choice.identity.kps)
        embedding_source = choice.identity.source
    else:
        arcface = models.recognizer.embed_aligned(crop_bgr)
        embedding_source = "aligned_crop"
    checkpoint(should_cancel)

    with torch.inference_mode():
        face = crop_to_tensor(crop_bgr, models.device)
        face_gray, face_colour = face_on_white(models.parser, face)

    scale = np.array([src_w / work_w, src_h / work_h], dtype=np.float64)
    return FaceReading(
        arcface=np.asarray(arcface, dtype=np.float32).reshape(-1),
        parsed_face=face_gray.float().cpu(),
        face_image=to_uint8_image(face_colour),
        kps=_to_source(choice.face.kps, scale),
        bbox=_box_to_source(choice.face.bbox, scale),
        face_kps=transform_points(choice.face.kps, matrix),
        source_size=(src_w, src_h),
        work_size=(work_w, work_h),
        face_count=choice.face_count,
        detector=choice.face.source,
        aligned_with=choice.aligned_with,
        embedding_source=embedding_source,
        det_score=float(choice.face.score),
        align_error=alignment_error(choice.align_points, matrix),
        selection=str(selection),
    )


def _to_source(points: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Working-image points -> photo points, with cv2.resize's half-pixel-centre convention."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if np.all(scale == 1.0):
        return pts.astype(np.float32)
    return ((pts + 0.5) * scale - 0.5).astype(np.float32)


def _box_to_source(box: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return _to_source(np.asarray(box).reshape(2, 2), scale).reshape(4)


def _no_face(width: int, height: int, why: str) -> NoFaceError:
    return NoFaceError(
        f"No usable face in the {width}x{height} photo: {why}. Use a photo with a clear, frontal, well-lit face "
        "at least about 100 px wide (crop closer or use a larger photo); with several people, try another "
        "face_selection ('largest', 'central' or an index)."
    )
