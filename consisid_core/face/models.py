"""All face networks ConsisID needs, loaded once from local files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from collections.abc import Sequence

import torch

from ..runtime.offload import Placement
from ..errors import ModelFilesError
from ..runtime import RuntimeSetting, resolve_device, resolve_dtype
from .bisenet import BiSeNet, load_bisenet
from .detection import FaceDetector
from .eva_clip import EVAVisionTower, load_eva_visual
from .insightface_models import AntelopeDetector, ArcFaceRecognizer, resolve_providers
from .retinaface import RetinaFaceDetector, load_retinaface
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
    placement: Placement | None = None  # host copies of the torch networks (diffusers ModuleGroups, pinned in place)

    def networks(self) -> list[torch.nn.Module]:
        """The torch networks (RetinaFace, BiSeNet, EVA-CLIP) that live on `device`."""
        nets = (getattr(self.landmarker, "net", None), self.parser, self.eva)
        return [n for n in nets if isinstance(n, torch.nn.Module)]

    def offload(self) -> None:
        """Free the accelerator before sampling: drop the networks' device copies (host copies stay, unpinned) and
        the onnxruntime sessions that hold a CUDA arena (rebuilt on next use). Nothing is copied back."""
        if self.placement is not None:
            self.placement.release(*self.networks())
        for onnx in (self.detector, self.recognizer):
            if hasattr(onnx, "release_session"):
                onnx.release_session()

    def onload(self) -> None:
        """Bring the networks back onto `device` (a no-op when they are there or run on the CPU)."""
        if self.placement is not None:
            for net in self.networks():
                self.placement.load(net)


def load_face_models(
    face_encoder_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    onnx_providers: str | Sequence[str] | None = None,
    antelopev2_dir: str | os.PathLike | None = None,
    runtime: RuntimeSetting | None = None,
) -> FaceModels:
    """Load antelopev2, RetinaFace, BiSeNet and EVA02-CLIP-L from `face_encoder/` (or the model folder above it).

    Detector and parser run in float32 like the reference; EVA-CLIP runs in `dtype` on `device`.
    `onnx_providers` (default CPU) picks the onnxruntime providers, e.g. ["CUDAExecutionProvider"] or "cuda".
    `antelopev2_dir` may point at a shared copy, e.g. ComfyUI's models/insightface/models/antelopev2.
    `runtime` (consisid_core.runtime), when given, supplies device and dtype (its `face_dtype`) instead.
    """
    if runtime is not None:
        device, dtype = runtime.device, runtime.face_dtype
    else:
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device, "face_dtype")
    files = locate_face_weights(face_encoder_dir, antelopev2_dir)
    providers = resolve_providers(onnx_providers)
    try:
        detector = AntelopeDetector(files.scrfd, providers)
        recognizer = ArcFaceRecognizer(files.glintr100, providers)
    except ValueError as exc:
        raise ModelFilesError(f"{exc} Re-download antelopev2 (see the README).") from exc
    # built on the CPU: these copies stay as the home `offload()` returns to; device copies come at first use
    models = FaceModels(
        detector=detector,
        landmarker=RetinaFaceDetector(load_retinaface(files.retinaface, "cpu").net, device),
        recognizer=recognizer,
        parser=load_bisenet(files.bisenet, "cpu"),
        eva=load_eva_visual(files.eva_clip, "cpu", dtype),
        device=device,
        dtype=dtype,
        files=files,
        onnx_providers=providers,
        placement=Placement(device, "none", host_copies=True),
    )
    return models
