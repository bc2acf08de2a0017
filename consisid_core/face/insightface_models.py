"""antelopev2 through insightface/onnxruntime: the SCRFD detector and the glintr100 ArcFace recogniser.

Only these two files of the pack are loaded: the reference also runs the 3-D/2-D landmark and
gender/age models on every face, whose outputs ConsisID never uses. Detection and embeddings are the
calls `FaceAnalysis(name="antelopev2").get()` makes (det_size 640, det_thresh 0.5), so results match.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence

import numpy as np

from .detection import DetectedFace

DET_SIZE = (640, 640)
DET_THRESH = 0.5
_PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
log = logging.getLogger("ConsisID")


def resolve_providers(providers: str | Sequence[str] | None) -> list[str]:
    """ONNX execution providers to use: CPU by default; unknown or unavailable ones fall back to CPU with a warning."""
    import onnxruntime

    if providers is None:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        providers = [providers]
    names = [_PROVIDER_ALIASES.get(str(p).lower(), str(p)) for p in providers]
    available = set(onnxruntime.get_available_providers())
    usable = [n for n in names if n in available]
    dropped = [n for n in names if n not in available]
    if dropped:
        log.warning("ConsisID: ONNX providers %s are not available here (have %s); using CPU for them.",
                    dropped, sorted(available))
    if "CPUExecutionProvider" not in usable:
        usable.append("CPUExecutionProvider")
    return usable


class _OnnxModel:
    """An insightface model whose onnxruntime session can be dropped (freeing its CUDA arena) and rebuilt on use."""

    model: object
    providers: list[str]

    @property
    def on_accelerator(self) -> bool:
        return any(p != "CPUExecutionProvider" for p in self.providers)

    def release_session(self, force: bool = False) -> bool:
        """Drop the session if it holds accelerator memory (or `force`); True when dropped."""
        if self.model.session is None or not (force or self.on_accelerator):
            return False
        self.model.session = None
        return True

    def _session(self) -> None:
        if self.model.session is None:
            import onnxruntime

            self.model.session = onnxruntime.InferenceSession(self.model.model_file, providers=self.providers)


class AntelopeDetector(_OnnxModel):
    """SCRFD-10G face detector as a FaceDetector (faces in insightface's order: by score)."""

    name = "antelopev2"

    def __init__(self, model_file: str | os.PathLike, providers: list[str]) -> None:
        from insightface.model_zoo import model_zoo

        self.providers = list(providers)
        self.model = model_zoo.get_model(os.fspath(model_file), providers=providers)
        if self.model is None or getattr(self.model, "taskname", None) != "detection" or not self.model.use_kps:
            raise ValueError(f"{model_file} is not an SCRFD face detector with 5 keypoints (like scrfd_10g_bnkps).")
        self.model.prepare(0, input_size=DET_SIZE, det_thresh=DET_THRESH)

    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        self._session()
        bboxes, kpss = self.model.detect(image_bgr, max_num=0, metric="default")
        return [
            DetectedFace(bbox=bboxes[i, :4], kps=kpss[i], score=float(bboxes[i, 4]), source=self.name)
            for i in range(bboxes.shape[0])
        ]


class ArcFaceRecognizer(_OnnxModel):
    """glintr100 ArcFace: 512-d raw (not L2-normalised) identity embedding, as the reference uses it."""

    def __init__(self, model_file: str | os.PathLike, providers: list[str]) -> None:
        from insightface.model_zoo import model_zoo

        self.providers = list(providers)
        self.model = model_zoo.get_model(os.fspath(model_file), providers=providers)
        if self.model is None or getattr(self.model, "taskname", None) != "recognition":
            raise ValueError(f"{model_file} is not an ArcFace recogniser (insightface did not recognise it).")
        self.model.prepare(0)

    def embed(self, image_bgr: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """Embedding of the face at `kps` (insightface norm_crop to 112 px, like FaceAnalysis.get)."""
        from insightface.utils import face_align

        self._session()
        with warnings.catch_warnings():  # scikit-image's deprecation notice inside insightface's norm_crop
            warnings.simplefilter("ignore", FutureWarning)
            crop = face_align.norm_crop(image_bgr, landmark=kps, image_size=self.model.input_size[0])
        return self.model.get_feat(crop).flatten()

    def embed_aligned(self, crop_bgr: np.ndarray) -> np.ndarray:
        """The reference's fallback: the 512 FFHQ crop resized to 112 by get_feat, shape (1, 512)."""
        self._session()
        return self.model.get_feat(crop_bgr)

