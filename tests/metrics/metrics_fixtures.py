"""Random-weight scoring models in the official files and folder layout (for tests and bench/bench_metrics.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from consisid_core.face.detection import DetectedFace

DATA = Path(__file__).parent / "data"


def pan(photo: np.ndarray, frames: int, window: int = 320, step: int = 8, out: int = 256) -> np.ndarray:
    """A horizontal pan over a photo: [F, out, out, 3] uint8, the window moving `step` px per frame."""
    h, w = photo.shape[:2]
    top = 0  # the astronaut's face is in the top third
    xs = [min(i * step, w - window) for i in range(frames)]
    return np.stack([cv2.resize(photo[top:top + window, x:x + window], (out, out), interpolation=cv2.INTER_AREA) for x in xs])


class HaarDetector:
    """Test double for the buffalo_l detector: OpenCV's Haar frontal-face cascade (random ONNX weights cannot
    tell a face from a coffee cup); the 5 points sit at fixed fractions of the box."""

    LAYOUT = np.array([[0.30, 0.40], [0.70, 0.40], [0.50, 0.60], [0.34, 0.78], [0.66, 0.78]], np.float32)
    name = "haar"

    def __init__(self) -> None:
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.calls = 0

    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        self.calls += 1
        gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
        faces = []
        for x, y, w, h in (boxes if len(boxes) else []):
            kps = np.array([x, y], np.float32) + self.LAYOUT * np.float32(w)
            faces.append(DetectedFace(np.array([x, y, x + w, y + h], np.float32), kps, 1.0, self.name))
        return faces


class PooledFeatures(torch.nn.Module):
    """Cheap stand-in for Inception (2048-d) or IR-101 (512-d) in protocol tests: pooled colours, one linear layer."""

    def __init__(self, dim: int = 2048) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3 * 8 * 8, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1))


def _tiny_onnx():
    """The tiny insightface-style ONNX writers (SCRFD-shaped detector, ArcFace-shaped recogniser)."""
    from consisid_core.demo import face_onnx

    return face_onnx


def write_eval_models(root: Path, ir_units: tuple[int, ...] | None = None, full_clip: bool = False) -> Path:
    """models/consisid/{ConsisID-preview/face_encoder, eval} with random weights in the official formats."""
    from consisid_core.metrics import files
    from consisid_core.metrics.inception import INCEPTION_FILE
    from consisid_core.metrics.ir101 import IR101_FILE, IRBackbone

    from metrics_tiny_clip import write_clip
    from metrics_weights import random_state, shapes_of

    onnx = _tiny_onnx()
    face_dir = root / "consisid" / "ConsisID-preview" / "face_encoder"
    buffalo = face_dir / "models" / "buffalo_l"
    buffalo.mkdir(parents=True)
    rng = np.random.default_rng(0)
    onnx.write_detector(buffalo / files.BUFFALO_DET_FILE, rng)
    onnx.write_recognizer(buffalo / files.BUFFALO_REC_FILE, rng)
    ir_shapes = ({k: tuple(v) for k, v in json.loads((DATA / "ir101_reference.json").read_text())["keys"].items()}
                 if ir_units is None else shapes_of(IRBackbone(ir_units)))
    torch.save(random_state(ir_shapes, seed=1), face_dir / IR101_FILE)
    eval_dir = root / "consisid" / "eval"
    eval_dir.mkdir(parents=True)
    inc_shapes = {k: tuple(v) for k, v in json.loads((DATA / "inception_keys.json").read_text()).items()
                  if not k.endswith("num_batches_tracked")}
    torch.save(random_state(inc_shapes, seed=2, gain=2.0), eval_dir / INCEPTION_FILE)
    write_clip(eval_dir / files.CLIP_DIR, full=full_clip)
    return face_dir.parent


def write_light_models(root: Path) -> Path:
    """Only the tiny buffalo_l recogniser and a tiny CLIP folder."""
    from metrics_tiny_clip import write_clip

    root.mkdir(parents=True, exist_ok=True)
    _tiny_onnx().write_recognizer(root / "w600k_r50.onnx", np.random.default_rng(0))
    write_clip(root / "clip-vit-base-patch32")
    return root
