"""Face detection and alignment for scoring, as the ConsisID eval script does it with buffalo_l.

The largest face (box area) at det_size 320; if none, one retry on the photo padded by 25 % per side with
a grey (128) border, points shifted back; the 224 px insightface crop of the unpadded photo, in RGB.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from ..face.detection import DetectedFace

DET_SIZE = (320, 320)
DET_THRESH = 0.5
CROP_SIZE = 224
PAD_SCALE = 1.25
PAD_GREY = (128, 128, 128)


class Detector(Protocol):
    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]: ...


class Recognizer(Protocol):
    def embed(self, image_bgr: np.ndarray, kps: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ScoringFace:
    """A face found for scoring: 224 RGB crop, raw ArcFace embedding, points in the frame, whether padding was needed."""

    crop_rgb: np.ndarray
    arc_embedding: np.ndarray
    kps: np.ndarray
    padded: bool


class BuffaloDetector:
    """buffalo_l's SCRFD (det_10g) through insightface at det_size 320, threshold 0.5."""

    name = "buffalo_l"

    def __init__(self, model_file: str | os.PathLike, providers: list[str]) -> None:
        from insightface.model_zoo import model_zoo

        self.model = model_zoo.get_model(os.fspath(model_file), providers=providers)
        if self.model is None or getattr(self.model, "taskname", None) != "detection" or not self.model.use_kps:
            raise ValueError(f"{model_file} is not an SCRFD face detector with 5 keypoints (like buffalo_l's det_10g).")
        self.model.prepare(0, input_size=DET_SIZE, det_thresh=DET_THRESH)

    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        bboxes, kpss = self.model.detect(image_bgr, max_num=0, metric="default")
        return [DetectedFace(bbox=bboxes[i, :4], kps=kpss[i], score=float(bboxes[i, 4]), source=self.name)
                for i in range(bboxes.shape[0])]


def largest(faces: list[DetectedFace]) -> DetectedFace | None:
    """Largest box area; on a tie the later face, as a stable ascending sort's last element."""
    best = None
    for face in faces:
        if best is None or face.area >= best.area:
            best = face
    return best


def pad_grey(image_bgr: np.ndarray, scale: float = PAD_SCALE) -> tuple[np.ndarray, tuple[int, int]]:
    """Grey border of int(side * (scale-1)) on every side; returns the image and the (left, top) offset."""
    h, w = image_bgr.shape[:2]
    top, left = int(h * (scale - 1.0)), int(w * (scale - 1.0))
    padded = cv2.copyMakeBorder(image_bgr, top, top, left, left, cv2.BORDER_CONSTANT, value=PAD_GREY)
    return padded, (left, top)


def norm_crop(image_bgr: np.ndarray, kps: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """insightface's ArcFace-template crop."""
    from insightface.utils import face_align

    with warnings.catch_warnings():  # scikit-image deprecation notice inside norm_crop
        warnings.simplefilter("ignore", FutureWarning)
        return face_align.norm_crop(image_bgr, landmark=kps, image_size=size)


def find_scoring_face(detector: Detector, recognizer: Recognizer, rgb: np.ndarray) -> ScoringFace | None:
    """The face the protocol scores in an RGB uint8 image, or None."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    face, source, offset = largest(detector.detect(bgr)), bgr, (0, 0)
    if face is None:
        source, offset = pad_grey(bgr)
        face = largest(detector.detect(source))
        if face is None:
            return None
    embedding = recognizer.embed(source, face.kps)  # on the image the face was found in, like FaceAnalysis.get
    kps = np.asarray(face.kps, np.float32) - np.asarray(offset, np.float32)
    crop = norm_crop(bgr, kps)
    return ScoringFace(np.ascontiguousarray(crop[:, :, ::-1]), np.asarray(embedding, np.float32).reshape(-1),
                       kps, source is not bgr)
