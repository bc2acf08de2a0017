"""Face Crop&Align, Landmark Renderer and Local Extractor on the real default photo (tiny face models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from support.node_graph import DEFAULT_PHOTO, MODEL_NAME


@pytest.fixture
def face_nodes(comfyui):
    (models,) = comfyui.mappings["ConsisIDFaceModelsLoader"].execute(MODEL_NAME, "CPU", "default", "fp32")
    photo = torch.from_numpy(np.asarray(Image.open(DEFAULT_PHOTO).convert("RGB")).astype(np.float32) / 255.0)[None]
    return comfyui.mappings, models, photo


def test_crop_align_gives_the_aligned_face_and_where_it_was(face_nodes):
    mappings, models, photo = face_nodes
    aligned, faces = mappings["ConsisIDFaceCropAlign"].execute(models, photo, "largest", 0)
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
    _aligned, faces = mappings["ConsisIDFaceCropAlign"].execute(models, photo, "largest", 0)
    canvas_image = None if canvas is None else torch.zeros(canvas)
    (image,) = mappings["ConsisIDLandmarkRenderer"].execute(faces, frame, canvas=canvas_image)
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
    _aligned, faces = mappings["ConsisIDFaceCropAlign"].execute(models, torch.cat([photo, brighter]), "largest", 0)
    (local,) = mappings["ConsisIDLocalExtractor"].execute(models, face_scale=0.8, face=faces)
    assert local.photos == 2 and local.face_scale == 0.8
    single = [extract_identity(models.get(), p, "largest") for p in (photo[0], brighter[0])]  # the core, per photo
    expected = average_identities(single)
    assert torch.allclose(local.id_cond, expected.id_cond)
    assert all(torch.allclose(a, b) for a, b in zip(local.id_vit_hidden, expected.id_vit_hidden))
    assert not torch.allclose(local.id_cond, single[0].id_cond), "both photos count"
    assert len(local.id_vit_hidden) == 5


def test_the_legacy_photo_input_gives_the_same_features_as_the_face_input(face_nodes):
    """Workflows saved before the face input wire the photo into the Local Extractor: same features."""
    mappings, models, photo = face_nodes
    _aligned, faces = mappings["ConsisIDFaceCropAlign"].execute(models, photo, "largest", 0)
    extractor = mappings["ConsisIDLocalExtractor"]
    (from_face,) = extractor.execute(models, face_scale=1.0, face=faces)
    (from_photo,) = extractor.execute(models, photo, 1.0, "largest", 0)  # the old positional call still works
    assert torch.equal(from_face.id_cond, from_photo.id_cond)
    assert all(torch.equal(a, b) for a, b in zip(from_face.id_vit_hidden, from_photo.id_vit_hidden))


def test_local_extractor_without_face_or_photo_says_what_to_connect(face_nodes):
    mappings, models, _photo = face_nodes
    with pytest.raises(Exception) as error:
        mappings["ConsisIDLocalExtractor"].execute(models, face_scale=1.0)
    assert "connect Face Crop&Align's face output to the Local Extractor's face input" in str(error.value)


def test_rgba_canvas_image_and_the_same_photo_on_disk_give_the_same_face(face_nodes, tmp_path):
    """One image normaliser: an RGBA IMAGE tensor on the canvas is composited on white like the RGBA file."""
    from consisid_core.face import extract_identity

    mappings, models, photo = face_nodes
    rgb = np.asarray(Image.open(DEFAULT_PHOTO).convert("RGB"))
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :96] = 0  # a transparent strip (left of the face) and a half-transparent one
    alpha[:, 96:160] = 100
    rgba = np.dstack([rgb, alpha])
    path = tmp_path / "face_rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    canvas = torch.from_numpy(rgba.astype(np.float32) / 255.0)[None]  # [1, H, W, 4]

    aligned, faces = mappings["ConsisIDFaceCropAlign"].execute(models, canvas, "largest", 0)
    (local,) = mappings["ConsisIDLocalExtractor"].execute(models, face_scale=1.0, face=faces)
    from_disk = extract_identity(models.get(), str(path), "largest")
    assert np.array_equal((aligned[0].numpy() * 255).round().astype(np.uint8), from_disk.face_image)
    assert torch.equal(local.id_cond, from_disk.id_cond)
    dropped_alpha = extract_identity(models.get(), rgb, "largest")
    assert not torch.equal(from_disk.id_cond, dropped_alpha.id_cond), "the alpha really changes the photo"


def test_global_extractor_reads_an_rgba_face_like_the_file(comfyui, tmp_path):
    """Global Extractor's canvas image goes through the same normaliser as a photo read from disk (alpha on white,
    not dropped)."""
    from support.pack import pack_module

    first_image_uint8 = pack_module("nodes.conditioning_nodes").first_image_uint8
    rgb = np.asarray(Image.open(DEFAULT_PHOTO).convert("RGB"))
    rgba = np.dstack([rgb, np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))])
    path = tmp_path / "face_rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    canvas = torch.from_numpy(rgba.astype(np.float32) / 255.0)[None]
    from_disk = np.asarray(Image.alpha_composite(Image.new("RGBA", (512, 512), "white"), Image.open(path)).convert("RGB"))
    assert np.abs(first_image_uint8(canvas).astype(int) - from_disk.astype(int)).max() <= 1  # PIL's own compositing
    assert first_image_uint8(canvas)[:, 0].min() == 255, "transparent -> white"
