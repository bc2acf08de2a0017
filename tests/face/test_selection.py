"""Which face becomes the identity.

Unit tests drive `choose` with hand-made detections (exact rules, ties, reference behaviour). The photo
tests plug a real classical detector (OpenCV Haar cascade) into FaceModels' detector seam, because
random-weight networks cannot find real faces; the recogniser, aligner, parser and EVA stay the real code.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from consisid_core.face import FaceSelectionError, extract_identity
from consisid_core.face.align import alignment_matrix, warp_face
from consisid_core.face.detection import DetectedFace
from consisid_core.face.resize import resize_long_edge
from consisid_core.face.parsing import crop_to_tensor, face_on_white, to_uint8_image
from consisid_core.face.selection import check_selection, choose


def face(x1, y1, x2, y2, source="antelopev2", score=0.9) -> DetectedFace:
    box = np.array([x1, y1, x2, y2], dtype=np.float32)
    kps = np.array([[x1, y1], [x2, y1], [(x1 + x2) / 2, (y1 + y2) / 2], [x1, y2], [x2, y2]], dtype=np.float32)
    return DetectedFace(bbox=box, kps=kps, score=score, source=source)


# a 1000x600 image: a big face on the left, a small one in the centre, a medium one on the right
BIG, SMALL_CENTRE, MEDIUM = face(50, 100, 350, 400), face(470, 270, 530, 330), face(700, 200, 850, 350)
R_BIG, R_CENTRE, R_MEDIUM = (face(*(f.bbox + d), source="retinaface") for f, d in
                             ((BIG, 5), (SMALL_CENTRE, 2), (MEDIUM, -3)))


def test_reference_mode_reproduces_the_mixed_choice():
    """reference: ArcFace/kps from antelopev2's LARGEST face, crop from RetinaFace's most CENTRAL face."""
    c = choose([MEDIUM, BIG, SMALL_CENTRE], [R_MEDIUM, R_BIG, R_CENTRE], "reference", 1000, 600)
    assert c.identity is BIG and c.face is BIG
    assert np.array_equal(c.align_points, R_CENTRE.kps)  # a different person: the reference's bug


@pytest.mark.parametrize("mode, expected, landmark", [
    ("largest", BIG, R_BIG), ("central", SMALL_CENTRE, R_CENTRE), (0, BIG, R_BIG), (1, SMALL_CENTRE, R_CENTRE),
    (2, MEDIUM, R_MEDIUM),
])
def test_other_modes_use_one_person_for_both(mode, expected, landmark):
    """largest/central/index: the crop is aligned with RetinaFace's detection of the SAME face."""
    c = choose([MEDIUM, BIG, SMALL_CENTRE], [R_MEDIUM, R_BIG, R_CENTRE], mode, 1000, 600)
    assert c.identity is expected and c.face is expected and c.face_count == 3
    assert np.array_equal(c.align_points, landmark.kps) and c.aligned_with == "retinaface"


def test_one_face_every_mode_equals_reference():
    for mode in ("largest", "central", 0):
        ref = choose([BIG], [R_BIG], "reference", 1000, 600)
        c = choose([BIG], [R_BIG], mode, 1000, 600)
        assert c.identity is ref.identity and np.array_equal(c.align_points, ref.align_points)


def test_tie_rules_follow_the_reference():
    """Equal areas: the reference's sorted(...)[-1] takes the later face; equal distances: the earlier one."""
    a, b = face(0, 0, 100, 100), face(500, 0, 600, 100)
    assert choose([a, b], [], "largest", 1000, 600).identity is b
    left, right = face(400, 250, 450, 300, "retinaface"), face(550, 300, 600, 350, "retinaface")
    assert choose([], [left, right], "central", 1000, 600).face is left


def test_retinaface_missed_the_face_aligns_with_antelopev2_points():
    """No overlapping RetinaFace detection (its 0.97 threshold is strict): antelopev2's own 5 points align."""
    c = choose([BIG], [R_MEDIUM], "largest", 1000, 600)
    assert c.identity is BIG and np.array_equal(c.align_points, BIG.kps) and c.aligned_with == "antelopev2"
    ref = choose([BIG], [], "reference", 1000, 600)  # the reference raises here; we align instead
    assert ref.identity is BIG and np.array_equal(ref.align_points, BIG.kps)


def test_only_retinaface_found_faces_embeds_the_crop():
    """antelopev2 found nothing: RetinaFace's face is used and the ArcFace vector comes from the aligned crop."""
    c = choose([], [R_MEDIUM, R_BIG], "largest", 1000, 600)
    assert c.identity is None and c.face is R_BIG and np.array_equal(c.align_points, R_BIG.kps)
    assert choose([], [], "largest", 1000, 600) is None


def test_index_out_of_range_says_how_many_faces():
    with pytest.raises(FaceSelectionError) as err:
        choose([BIG, MEDIUM], [], 2, 1000, 600)
    assert "only 2 face(s)" in str(err.value) and "0..1" in str(err.value) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("bad", ["biggest", -1, 1.5, None, True])
def test_invalid_selection_values(bad):
    with pytest.raises(FaceSelectionError):
        check_selection(bad)
    assert check_selection("2") == 2 and check_selection(" Central ") == "central"


# ----------------------------------------------------------------- real photos through the detector seam


@pytest.fixture(scope="module")
def group(photos, haar_models):
    """t1 reduced to the working size, and the Haar faces in it (left to right)."""
    work = resize_long_edge(photos["t1"])
    faces = haar_models.detector.detect(cv2.cvtColor(work, cv2.COLOR_RGB2BGR))
    assert len(faces) >= 3, "the Haar cascade should find several faces in t1"
    return work, sorted(faces, key=lambda f: f.bbox[0] + f.bbox[2])


@pytest.fixture(scope="module")
def group_identity(haar_models, photos):
    """extract_identity on t1 per face_selection, computed once per module."""
    cache = {}

    def get(mode):
        if mode not in cache:
            cache[mode] = extract_identity(haar_models, photos["t1"], face_selection=mode)
        return cache[mode]

    return get


def _expected(models, work, chosen):
    """What the identity of `chosen` must be: its own ArcFace vector and its own aligned, parsed crop."""
    bgr = cv2.cvtColor(work, cv2.COLOR_RGB2BGR)
    crop = warp_face(bgr, alignment_matrix(chosen.kps))
    _, colour = face_on_white(models.parser, crop_to_tensor(crop, models.device))
    return models.recognizer.embed(bgr, chosen.kps), to_uint8_image(colour)


@pytest.mark.parametrize("mode", ["largest", "central", 0, 1, 2])
def test_group_photo_one_person_for_arcface_and_crop(haar_models, photos, group, group_identity, mode):
    """On the group photo, each mode's ArcFace vector and face crop both belong to the selected person."""
    work, faces = group
    if mode == "largest":
        chosen = max(faces, key=lambda f: f.area)
    elif mode == "central":
        h, w = work.shape[:2]
        chosen = min(faces, key=lambda f: np.hypot((f.bbox[0] + f.bbox[2]) / 2 - w / 2, (f.bbox[1] + f.bbox[3]) / 2 - h / 2))
    else:
        chosen = faces[mode]
    ident = group_identity(mode)
    arcface, face_image = _expected(haar_models, work, chosen)
    assert torch.allclose(ident.arcface, torch.from_numpy(arcface)[None], atol=1e-6)
    assert np.array_equal(ident.face_image, face_image)
    scale = photos["t1"].shape[1] / work.shape[1]
    assert np.abs(ident.bbox - chosen.bbox * scale).max() < 2.0  # reported in the 1280 px photo's frame
    assert ident.face_count == len(faces)


def test_group_photo_indices_go_left_to_right(haar_models, photos, group, group_identity):
    _, faces = group
    xs = [group_identity(i).bbox[[0, 2]].mean() for i in range(len(faces))]
    assert xs == sorted(xs)
    with pytest.raises(FaceSelectionError) as err:
        extract_identity(haar_models, photos["t1"], len(faces))
    assert f"only {len(faces)} face(s)" in str(err.value)


def test_group_photo_reference_mode_mixes_people_like_the_reference(haar_models, photos, group, group_identity):
    """reference on t1: ArcFace of the largest face, crop of the most central face (different people here)."""
    work, faces = group
    largest = max(faces, key=lambda f: f.area)
    h, w = work.shape[:2]
    central = min(faces, key=lambda f: np.hypot((f.bbox[0] + f.bbox[2]) / 2 - w / 2, (f.bbox[1] + f.bbox[3]) / 2 - h / 2))
    assert largest is not central
    ident = group_identity("reference")
    arcface, _ = _expected(haar_models, work, largest)
    _, face_image = _expected(haar_models, work, central)
    assert torch.allclose(ident.arcface, torch.from_numpy(arcface)[None], atol=1e-6)
    assert np.array_equal(ident.face_image, face_image)


def test_single_face_photo_all_modes_equal_reference(haar_models, photos):
    """With one face (astronaut), every mode returns exactly the reference-mode identity."""
    ref = extract_identity(haar_models, photos["astronaut"], "reference")
    for mode in ("largest", "central", 0):
        ident = extract_identity(haar_models, photos["astronaut"], mode)
        assert torch.equal(ident.id_cond, ref.id_cond) and np.array_equal(ident.face_image, ref.face_image)


def test_detector_seam_accepts_any_detector(tiny_face_models, haar_detector_class, photos):
    """FaceModels' detectors are replaceable by anything with detect(bgr) -> list[DetectedFace]."""
    double = haar_detector_class("antelopev2")
    models = dataclasses.replace(tiny_face_models, detector=double, landmarker=haar_detector_class("retinaface"))
    extract_identity(models, photos["astronaut"])
    assert double.calls == 1
