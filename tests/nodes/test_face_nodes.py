"""Face Crop&Align, Landmark Renderer and Local Extractor on the real default photo (tiny face models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from support.node_graph import DEFAULT_PHOTO, MODEL_NAME


@pytest.fixture
def face_nodes(comfyui):
    (models,) = comfyui.mappings["ConsisIDFaceModelsLoader"]().load(MODEL_NAME, "CPU", "default", "fp32")
    photo = torch.from_numpy(np.asarray(Image.open(DEFAULT_PHOTO).convert("RGB")).astype(np.float32) / 255.0)[None]
    return comfyui.mappings, models, photo


def test_crop_align_gives_the_aligned_face_and_where_it_was(face_nodes):
    mappings, models, photo = face_nodes
    aligned, faces = mappings["ConsisIDFaceCropAlign"]().align(models, photo, "largest", 0)
    assert tuple(aligned.shape) == (1, 512, 512, 3) and aligned.dtype == torch.float32
    (face,) = faces.faces
    assert face.source_size == (512, 512) and face.aligned_size == (512, 512) and face.face_count == 1
    # the planted face of the default photo: eyes at about (204, 102) and (247, 104)
    assert np.allclose(face.kps[:2], [[204.2, 102.3], [247.1, 104.4]], atol=1.0)
    left_eye, right_eye = face.face_kps[0], face.face_kps[1]
    assert 150 < left_eye[0] < right_eye[0] < 360 and abs(left_eye[1] - right_eye[1]) < 10, "aligned: eyes level"


@pytest.mark.parametrize("frame, canvas, size", [("aligned_face", None, (512, 512)), ("photo", None, (512, 512)),
                                                 ("photo", (1, 256, 384, 3), (384, 256))])
def test_landmark_renderer_draws_the_five_points(face_nodes, frame, canvas, size):
    mappings, models, photo = face_nodes
    _aligned, faces = mappings["ConsisIDFaceCropAlign"]().align(models, photo, "largest", 0)
    canvas_image = None if canvas is None else torch.zeros(canvas)
    (image,) = mappings["ConsisIDLandmarkRenderer"]().render(faces, frame, canvas=canvas_image)
    assert tuple(image.shape) == (1, size[1], size[0], 3)
    info = faces.faces[0]
    points, source = (info.face_kps, info.aligned_size) if frame == "aligned_face" else (info.kps, info.source_size)
    for (x, y), colour in zip(points * np.array(size) / np.array(source), ((1, 0, 0), (0, 1, 0), (0, 0, 1))):
        assert torch.allclose(image[0, int(y), int(x)], torch.tensor(colour, dtype=torch.float32)), "a dot per point"
    assert float(image[0, :5, :5].sum()) == 0.0, "black elsewhere"


def test_local_extractor_averages_a_batch_of_photos(face_nodes):
    from consisid_core.face import average_identities, extract_identity

    mappings, models, photo = face_nodes
    brighter = (photo * 1.25).clamp(0, 1)
    (local,) = mappings["ConsisIDLocalExtractor"]().extract(models, torch.cat([photo, brighter]), 0.8, "largest", 0)
    assert local.photos == 2 and local.face_scale == 0.8
    single = [models.identity(p, "largest", extract_identity) for p in (photo[0], brighter[0])]  # memoised
    expected = average_identities(single)
    assert torch.allclose(local.id_cond, expected.id_cond)
    assert not torch.allclose(local.id_cond, single[0].id_cond), "both photos count"
    assert len(local.id_vit_hidden) == 5
