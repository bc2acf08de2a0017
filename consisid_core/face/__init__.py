"""ConsisID face pipeline: photo -> aligned face on white + ArcFace/EVA-CLIP identity features.

Public API (stable):
    load_face_models(face_encoder_dir, device="cpu", dtype=torch.float32, onnx_providers=None, antelopev2_dir=None)
    extract_identity(models, image, face_selection="largest") -> Identity | list[Identity]
        = encode_identity(models, read_face(models, image, face_selection)): each photo is read once
    read_face(models, image, face_selection="largest") -> FaceReading | list[FaceReading]
    encode_identity(models, reading) -> Identity
    average_identities(identities) -> Identity
    draw_keypoints(image_size_or_canvas, kps) -> np.ndarray
    NoFaceError, FaceSelectionError, FaceWeightsError, InvalidImageError
"""

from __future__ import annotations

from .detection import DetectedFace, FaceDetector
from .errors import FaceSelectionError, FaceWeightsError, InvalidImageError, NoFaceError
from .extract import encode_identity, extract_identity, read_face
from .identity import FaceReading, Identity, average_identities
from .keypoints import draw_keypoints
from .models import FaceModels, load_face_models
from .weights import FaceWeightFiles, locate_face_weights

__all__ = [
    "DetectedFace",
    "FaceDetector",
    "FaceModels",
    "FaceReading",
    "FaceSelectionError",
    "FaceWeightFiles",
    "FaceWeightsError",
    "Identity",
    "InvalidImageError",
    "NoFaceError",
    "average_identities",
    "draw_keypoints",
    "encode_identity",
    "extract_identity",
    "load_face_models",
    "locate_face_weights",
    "read_face",
]
