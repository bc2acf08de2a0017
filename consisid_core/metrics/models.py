"""The four scoring models, loaded from local files: buffalo_l, CurricularFace IR-101, Inception-v3, CLIP B/32."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from .files import EvalFiles, locate_eval_files


@dataclass
class EvalModels:
    """Everything `score_video` needs; `files` says where each model came from."""

    detector: Any  # .detect(bgr) -> list[DetectedFace]
    recognizer: Any  # .embed(bgr, kps) -> raw ArcFace embedding
    curricular: torch.nn.Module  # IR-101, RGB 112 in [-1, 1] -> 512
    inception: torch.nn.Module  # [N,3,299,299] in [0,1] -> 2048
    clip: Any  # ClipScorer
    files: EvalFiles | None = None

    @property
    def device(self) -> torch.device:
        return next(self.curricular.parameters()).device


def load_eval_models(face_encoder_dir: str | os.PathLike, eval_dir: str | os.PathLike | None = None,
                     device: str | torch.device = "cpu", buffalo_l_dir: str | os.PathLike | None = None,
                     onnx_providers: list[str] | None = None) -> EvalModels:
    """Load the scoring models (never downloads; a missing file raises one error listing all of them).

    `face_encoder_dir`: the ConsisID model folder or its face_encoder/ (IR-101, and buffalo_l in models/buffalo_l/);
    `eval_dir`: holds inception_v3_google-0cc3c7bd.pth and clip-vit-base-patch32/ (default: models/consisid/eval/).
    """
    from ..face.insightface_models import ArcFaceRecognizer, resolve_providers
    from .clip_score import ClipScorer
    from .faces import BuffaloDetector
    from .inception import load_inception
    from .ir101 import load_ir_backbone

    files = locate_eval_files(face_encoder_dir, eval_dir, buffalo_l_dir)
    providers = resolve_providers(onnx_providers)
    return EvalModels(
        detector=BuffaloDetector(files.detector, providers),
        recognizer=ArcFaceRecognizer(files.recognizer, providers),
        curricular=load_ir_backbone(files.ir101, device),
        inception=load_inception(files.inception, device),
        clip=ClipScorer(files.clip_dir, device),
        files=files,
    )
