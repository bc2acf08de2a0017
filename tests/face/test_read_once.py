"""The Python API reads a photo once: read_face (detect, align, ArcFace, parse) + encode_identity (EVA-CLIP) is
extract_identity, each detector runs once per photo, and an RGBA photo on disk equals the same RGBA tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from consisid_core.face import FaceReading, encode_identity, extract_identity, read_face
from support.node_graph import DEFAULT_PHOTO


@pytest.fixture(scope="module")
def default_photo() -> np.ndarray:
    return np.asarray(Image.open(DEFAULT_PHOTO).convert("RGB"))


@pytest.fixture
def detect_calls(planted_face_models, monkeypatch) -> list:
    calls: list = []
    for name in ("detector", "landmarker"):
        detector = getattr(planted_face_models, name)
        original = detector.detect
        monkeypatch.setattr(detector, "detect", lambda bgr, original=original, name=name: calls.append(name) or original(bgr))
    return calls


def test_read_then_encode_is_extract_identity(planted_face_models, default_photo, detect_calls):
    reading = read_face(planted_face_models, default_photo)
    assert isinstance(reading, FaceReading) and detect_calls == ["detector", "landmarker"], "one read"
    assert reading.arcface.shape == (512,) and tuple(reading.parsed_face.shape) == (1, 3, 512, 512)
    encoded = encode_identity(planted_face_models, reading)
    assert detect_calls == ["detector", "landmarker"], "encoding never looks at the photo again"
    direct = extract_identity(planted_face_models, default_photo)
    assert torch.equal(encoded.id_cond, direct.id_cond)
    assert all(torch.equal(a, b) for a, b in zip(encoded.id_vit_hidden, direct.id_vit_hidden, strict=True))
    assert np.array_equal(encoded.face_image, direct.face_image) and np.array_equal(encoded.kps, direct.kps)
    assert torch.equal(encoded.arcface, torch.from_numpy(reading.arcface)[None])
    assert detect_calls.count("detector") == 2, "extract_identity: one more photo, one more read"


def test_a_batch_is_read_once_per_photo(planted_face_models, default_photo, detect_calls):
    found = extract_identity(planted_face_models, [default_photo, default_photo[:, ::-1]])
    assert len(found) == 2 and detect_calls == ["detector", "landmarker"] * 2


def test_rgba_photo_on_disk_and_the_same_rgba_tensor_give_the_same_identity(planted_face_models, default_photo, tmp_path):
    alpha = np.full(default_photo.shape[:2], 255, np.uint8)
    alpha[:, :96], alpha[:, 96:160] = 0, 100
    rgba = np.dstack([default_photo, alpha])
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    from_disk = extract_identity(planted_face_models, str(path))
    from_tensor = extract_identity(planted_face_models, torch.from_numpy(rgba).float()[None] / 255.0)
    assert np.array_equal(from_disk.face_image, from_tensor.face_image)
    assert torch.equal(from_disk.id_cond, from_tensor.id_cond)
