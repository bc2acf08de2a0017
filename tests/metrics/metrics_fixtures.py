"""Random-weight scoring models in the official files and folder layout (for tests and bench/bench_metrics.py)."""

from __future__ import annotations


import cv2
import numpy as np
import torch

from consisid_core.face.detection import DetectedFace


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


# the model writers moved to consisid_core/demo/metrics_models.py (bench/bench_metrics.py needs them too)
from consisid_core.demo.metrics_models import write_eval_models, write_light_models  # noqa: E402,F401
