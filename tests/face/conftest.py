"""Face-pipeline fixtures: random-weight face_encoder folders (built once per session), real photos, and a
classical-detector test double for the detector seam of FaceModels."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from consisid_core.face.detection import DetectedFace


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photographs that ship inside packages, as RGB uint8 arrays."""
    skdata = pytest.importorskip("skimage.data")
    idata = pytest.importorskip("insightface.data")
    return {
        "astronaut": skdata.astronaut(),  # 512x512, one face
        "t1": np.ascontiguousarray(idata.get_image("t1")[:, :, ::-1]),  # 1280x886 group photo
        "tom": np.ascontiguousarray(idata.get_image("Tom_Hanks_54745")[:, :, ::-1]),  # 112x112 aligned face
        "chelsea": skdata.chelsea(),  # a cat
        "coffee": skdata.coffee(),  # a cup of coffee
    }


@pytest.fixture(scope="session")
def tiny_face_dir(tmp_path_factory):
    """Model folder with a random face_encoder/ (full-size RetinaFace/BiSeNet, tiny EVA, tiny antelopev2)."""
    from consisid_core.demo.face_models import write_face_encoder

    root = tmp_path_factory.mktemp("face_tiny")
    write_face_encoder(root, eva="tiny", seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_face_models(tiny_face_dir):
    from consisid_core.face import load_face_models

    return load_face_models(tiny_face_dir)


@pytest.fixture(scope="session")
def planted_face_models(tmp_path_factory):
    """Random models that find the real face of the bundled default photo (what generate --random-weights uses)."""
    from consisid_core.face import load_face_models
    from consisid_core.demo.face_models import face_models_for_default_photo

    root = tmp_path_factory.mktemp("face_planted")
    face_models_for_default_photo(root, eva="tiny")
    return load_face_models(root)


@pytest.fixture(scope="session")
def full_face_dir(tmp_path_factory):
    """Model folder with the full-size EVA02-CLIP-L (577 tokens x 1024); slow to write, so built once."""
    from consisid_core.demo.face_models import write_face_encoder

    root = tmp_path_factory.mktemp("face_full")
    write_face_encoder(root, eva="full", seed=0)
    return root


class HaarFaceDetector:
    """Test double for a FaceDetector: OpenCV's classical Haar frontal-face cascade.

    Random network weights cannot tell a cat from a face, so tests of face *selection* and *no-face*
    handling plug this real (if crude) detector into the FaceModels seam. The 5 points are placed at
    fixed fractions of the box, which is all the alignment needs.
    """

    LAYOUT = np.array([[0.29, 0.38], [0.74, 0.40], [0.50, 0.69], [0.26, 0.77], [0.72, 0.80]], dtype=np.float32)

    def __init__(self, name: str = "antelopev2", min_size: int = 30) -> None:
        self.name = name
        self.min_size = min_size
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.calls = 0

    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        self.calls += 1
        gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size,) * 2)
        faces = []
        for x, y, w, h in (boxes if len(boxes) else []):
            bbox = np.array([x, y, x + w, y + h], dtype=np.float32)
            kps = (np.array([x, y], dtype=np.float32) + self.LAYOUT * np.float32(w)).astype(np.float32)
            faces.append(DetectedFace(bbox=bbox, kps=kps, score=1.0, source=self.name))
        return sorted(faces, key=lambda f: -f.area)  # a real detector's order is by score, not position


@pytest.fixture(scope="session")
def haar_models(tiny_face_models):
    """The tiny models with both detectors replaced by the Haar double (recogniser/parser/EVA stay real)."""
    return dataclasses.replace(
        tiny_face_models, detector=HaarFaceDetector("antelopev2"), landmarker=HaarFaceDetector("retinaface")
    )


@pytest.fixture
def haar_detector_class():
    return HaarFaceDetector
