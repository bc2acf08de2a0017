"""No face -> NoFaceError (a ValueError) with the photo size and what to do; never IndexError/AttributeError.

Photos without a human face are tested through the detector seam with a real classical detector (Haar),
since random-weight networks fire anywhere. The "both networks find nothing" path is tested with the real
networks made silent, and the reference's glintr100 fallback with a silent antelopev2 detector.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from consisid_core.face import NoFaceError, extract_identity, load_face_models
from consisid_core.face.align import alignment_matrix, warp_face
from consisid_core.demo.face_models import write_face_encoder


def _assert_helpful(err: NoFaceError, width: int, height: int) -> None:
    msg = str(err)
    assert f"{width}x{height}" in msg
    assert "face_selection" in msg and "larger" in msg
    assert isinstance(err, ValueError) and not isinstance(err, (IndexError, AttributeError))


@pytest.mark.parametrize("name, size", [("chelsea", (451, 300)), ("coffee", (600, 400))])
def test_photo_without_a_human_face(haar_models, photos, name, size):
    """A cat and a cup of coffee: the (Haar) detectors find nothing -> NoFaceError naming the photo size."""
    with pytest.raises(NoFaceError) as err:
        extract_identity(haar_models, photos[name])
    _assert_helpful(err.value, *size)


def test_face_too_small_to_detect(haar_models, photos):
    """A 24x24 thumbnail of a portrait: no detector can see the face -> NoFaceError with '24x24'."""
    thumb = cv2.resize(photos["astronaut"], (24, 24), interpolation=cv2.INTER_AREA)
    with pytest.raises(NoFaceError) as err:
        extract_identity(haar_models, thumb)
    _assert_helpful(err.value, 24, 24)


def test_tiny_image_fails_fast_before_the_networks(tiny_face_models, photos):
    """Below 16 px a side we stop before running any network (real models, no seam)."""
    with pytest.raises(NoFaceError) as err:
        extract_identity(tiny_face_models, photos["astronaut"][:12, :40])
    _assert_helpful(err.value, 40, 12)
    assert "smaller than 16 px" in str(err.value)


def test_a_list_with_one_faceless_photo_raises(haar_models, photos):
    with pytest.raises(NoFaceError):
        extract_identity(haar_models, [photos["astronaut"], photos["coffee"]])


@pytest.fixture(scope="module")
def silent_dir(tmp_path_factory):
    """Random models whose antelopev2 and RetinaFace detectors never fire."""
    root = tmp_path_factory.mktemp("face_silent")
    write_face_encoder(root, eva="tiny", antelopev2_fires=False, retinaface_fires=False)
    return root


def test_real_networks_finding_nothing(silent_dir, photos):
    """Both real detectors return no face -> NoFaceError (the reference crashes with IndexError here)."""
    models = load_face_models(silent_dir)
    for mode in ("largest", "reference"):
        with pytest.raises(NoFaceError) as err:
            extract_identity(models, photos["astronaut"], mode)
        _assert_helpful(err.value, 512, 512)
        assert "neither the antelopev2 nor the RetinaFace detector" in str(err.value)


def test_antelopev2_silent_uses_the_reference_fallback(tmp_path_factory, photos):
    """antelopev2 finds nothing but RetinaFace does: the ArcFace vector comes from the aligned 512 crop
    (glintr100 on the crop resized to 112, the reference's fallback) in every mode."""
    root = tmp_path_factory.mktemp("face_fallback")
    write_face_encoder(root, eva="tiny", antelopev2_fires=False)
    models = load_face_models(root)
    ident = extract_identity(models, photos["astronaut"], "reference")
    assert ident.embedding_source == "aligned_crop" and ident.detector == "retinaface"
    bgr = cv2.cvtColor(photos["astronaut"], cv2.COLOR_RGB2BGR)
    crop = warp_face(bgr, alignment_matrix(ident.kps))  # RetinaFace's points are the reported kps here
    expected = models.recognizer.embed_aligned(crop)
    assert expected.shape == (1, 512) and np.allclose(ident.arcface.numpy(), expected, atol=1e-6)
    assert extract_identity(models, photos["astronaut"], "largest").embedding_source == "aligned_crop"
