"""draw_keypoints: the reference draw_kps picture, drawn in the coordinate frame of the canvas given."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from consisid_core.face import draw_keypoints

KPS = np.array([[204.2, 102.3], [247.1, 104.4], [224.1, 131.2], [201.8, 139.5], [245.9, 142.2]], dtype=np.float32)


def test_identical_to_diffusers_draw_kps():
    """Pixel-identical to diffusers' draw_kps on the same canvas size and points (it only uses the size)."""
    pipeline = pytest.importorskip("diffusers.pipelines.consisid.pipeline_consisid")
    expected = np.asarray(pipeline.draw_kps(Image.new("RGB", (512, 512)), KPS))
    assert np.array_equal(draw_keypoints((512, 512), KPS), expected)
    assert np.array_equal(draw_keypoints(Image.new("RGB", (512, 512)), KPS), expected)
    assert np.array_equal(draw_keypoints(np.zeros((512, 512, 3), np.uint8), KPS), expected)


def test_colours_radius_and_dimmed_limbs():
    canvas = draw_keypoints((512, 400), KPS)
    assert canvas.shape == (400, 512, 3) and canvas.dtype == np.uint8
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]
    for (x, y), colour in zip(KPS.astype(int), colours):
        assert tuple(canvas[y, x]) == colour
        assert tuple(canvas[y, x + 9]) == colour and tuple(canvas[y, x + 12]) != colour  # radius 10
    # halfway along the left-eye -> nose limb, outside the dots: the eye colour at 60 %
    mid = ((KPS[0] + KPS[2]) / 2).astype(int)
    assert tuple(canvas[mid[1], mid[0]]) == (153, 0, 0)
    assert tuple(canvas[0, 0]) == (0, 0, 0)


def test_points_from_another_frame_are_rescaled():
    """kps measured on a 1024 px photo land in the right place on a 512 canvas when source_size is given."""
    on_photo = KPS * 2
    assert np.array_equal(draw_keypoints((512, 512), on_photo, source_size=(1024, 1024)), draw_keypoints((512, 512), KPS))


def test_identity_face_kps_draw_on_the_face_image(planted_face_models, photos):
    """Identity.face_kps are in face_image pixels: the dots fall inside the 512 crop near the FFHQ template."""
    from consisid_core.face import extract_identity

    ident = extract_identity(planted_face_models, photos["astronaut"])
    canvas = draw_keypoints(ident.face_image, ident.face_kps)
    x, y = ident.face_kps[2].astype(int)  # nose
    assert 150 < x < 360 and 200 < y < 400 and tuple(canvas[y, x]) == (0, 0, 255)


def test_bad_canvas_argument():
    with pytest.raises(ValueError):
        draw_keypoints("512x512", KPS)
