"""All face networks ConsisID needs, loaded once from local files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from collections.abc import Sequence

import torch

from ..errors import ModelFilesError
from .bisenet import BiSeNet, load_bisenet
from .detection import FaceDetector
from .eva_clip import EVAVisionTower, load_eva_visual
from .insightface_models import AntelopeDetector, ArcFaceRecognizer, resolve_providers
from .retinaface import load_retinaface
from .weights import FaceWeightFiles, locate_face_weights


@dataclass
class FaceModels:
    """The loaded face stack.

    `detector` (antelopev2 SCRFD) and `landmarker` (RetinaFace) are seams: anything with
    `detect(bgr) -> list[DetectedFace]` fits, e.g. a classical detector in tests.
    """

    detector: FaceDetector
    landmarker: FaceDetector
    recognizer: ArcFaceRecognizer
    parser: BiSeNet
    eva: EVAVisionTower
    device: torch.device
    dtype: torch.dtype
    files: FaceWeightFiles | None = None
    onnx_providers: list[str] = field(default_factory=list)


def load_face_models(
    face_encoder_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    onnx_providers: str | Sequence[str] | None = None,
    antelopev2_dir: str | os.PathLike | None = None,
) -> FaceModels:
    """Load antelopev2, RetinaFace, BiSeNet and EVA02-CLIP-L from `face_encoder/` (or the model folder above it).

    Detector and parser run in float32 like the reference; EVA-CLIP runs in `dtype` on `device`.
    `onnx_providers` (default CPU) picks the onnxruntime providers, e.g. ["CUDAExecutionProvider"] or "cuda".
    `antelopev2_dir` may point at a shared copy, e.g. ComfyUI's models/insightface/models/antelopev2.
    """
    files = locate_face_weights(face_encoder_dir, antelopev2_dir)
    device = torch.device(device)
    providers = resolve_providers(onnx_providers)
    try:
        detector = AntelopeDetector(files.scrfd, providers)
        recognizer = ArcFaceRecognizer(files.glintr100, providers)
    except ValueError as exc:
        raise ModelFilesError(f"{exc} Re-download antelopev2 (see the README).") from exc
    return FaceModels(
        detector=detector,
        landmarker=load_retinaface(files.retinaface, device),
        recognizer=recognizer,
        parser=load_bisenet(files.bisenet, device),
        eva=load_eva_visual(files.eva_clip, device, dtype),
        device=device,
        dtype=dtype,
        files=files,
        onnx_providers=providers,
    )
