"""extract_identity end to end on real photos with random-weight models in the official file formats.

The networks' numerical agreement with the reference is proven by test_reference_parity.py; these tests
prove the contract (shapes, dtypes, coordinate frames, input handling, lists/averaging) on the real code.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from consisid_core.face import Identity, average_identities, extract_identity, load_face_models
from consisid_core.face.align import FFHQ_TEMPLATE, alignment_matrix, warp_face
from consisid_core.demo.face_models import DEFAULT_PHOTO
from consisid_core.demo.face_onnx import DEFAULT_FACE

PLANTED_KPS = np.array(DEFAULT_FACE.kps, dtype=np.float32)


@pytest.fixture(scope="module")
def default_photo() -> np.ndarray:
    return np.asarray(Image.open(DEFAULT_PHOTO).convert("RGB"))


@pytest.fixture(scope="module")
def planted_identity(planted_face_models, default_photo) -> Identity:
    return extract_identity(planted_face_models, default_photo)


def test_identity_contract_with_tiny_models(tiny_face_models, photos):
    """Shapes/dtypes: id_cond [1, 512+E] float32, 5 hidden states, 512x512x3 uint8 face, 5x2 float32 points."""
    ident = extract_identity(tiny_face_models, photos["astronaut"])
    assert isinstance(ident, Identity)
    assert ident.id_cond.shape == (1, 512 + 16) and ident.id_cond.dtype == torch.float32
    assert ident.id_cond.device.type == "cpu"
    assert len(ident.id_vit_hidden) == 5 and all(h.shape == (1, 17, 16) for h in ident.id_vit_hidden)
    assert ident.face_image.shape == (512, 512, 3) and ident.face_image.dtype == np.uint8
    assert ident.kps.shape == (5, 2) and ident.kps.dtype == np.float32 and ident.bbox.shape == (4,)
    assert torch.allclose(ident.clip_embedding.norm(dim=1), torch.ones(1), atol=1e-5)  # unit EVA part
    assert ident.arcface.norm() > 1.5  # raw ArcFace vector, not normalised
    assert ident.source_size == ident.work_size == (512, 512) and ident.face_count >= 1
    # the hidden states are distinct snapshots (after blocks 4, 8, 12, 16, 20), not one tensor reused
    assert all(not torch.equal(a, b) for a, b in zip(ident.id_vit_hidden, ident.id_vit_hidden[1:]))


def test_deterministic(tiny_face_models, photos):
    """Same photo twice -> bit-identical identity."""
    a = extract_identity(tiny_face_models, photos["tom"])
    b = extract_identity(tiny_face_models, photos["tom"])
    assert torch.equal(a.id_cond, b.id_cond) and np.array_equal(a.face_image, b.face_image)


def test_planted_default_photo_gives_the_real_face(planted_identity, default_photo):
    """The random models of `generate --random-weights` find the astronaut's real face and align it properly."""
    ident = planted_identity
    assert np.abs(ident.kps - PLANTED_KPS).max() < 1e-3
    assert ident.face_count == 1 and ident.detector == "antelopev2" and ident.embedding_source == "antelopev2"
    assert ident.aligned_with == "antelopev2"  # the random RetinaFace stays silent in this variant
    # the crop is the photo warped so the 5 points land near the FFHQ template
    expected = warp_face(cv2.cvtColor(default_photo, cv2.COLOR_RGB2BGR), alignment_matrix(PLANTED_KPS))
    assert np.array_equal(ident.face_image, expected[:, :, ::-1])  # parser keeps every pixel in this variant
    assert np.abs(ident.face_kps - FFHQ_TEMPLATE).max() < 25
    assert ident.align_error < 15


@pytest.mark.parametrize("kind", ["pil", "tensor", "tensor_batch1", "path", "float"])
def test_input_types_give_the_same_identity(planted_face_models, planted_identity, default_photo, kind):
    """numpy, PIL, ComfyUI tensors, a file path and float arrays all give the very same identity."""
    image = {
        "pil": Image.fromarray(default_photo),
        "tensor": torch.from_numpy(default_photo.copy()).float() / 255,
        "tensor_batch1": (torch.from_numpy(default_photo.copy()).float() / 255)[None],
        "path": DEFAULT_PHOTO,
        "float": default_photo.astype(np.float64) / 255,
    }[kind]
    ident = extract_identity(planted_face_models, image)
    assert torch.equal(ident.id_cond, planted_identity.id_cond)
    assert np.array_equal(ident.face_image, planted_identity.face_image)


def test_large_photo_is_reduced_and_points_come_back_in_photo_pixels(planted_face_models, default_photo, planted_identity):
    """A 2048 px photo is processed at 1024 (as the reference) and kps/bbox are reported in the 2048 frame."""
    big = cv2.resize(default_photo, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    ident = extract_identity(planted_face_models, big)
    assert ident.source_size == (2048, 2048) and ident.work_size == (1024, 1024)
    # the tiny detector reports the planted points at the same relative place: x2 in the 1024 work image
    expected = (PLANTED_KPS.astype(np.float64) * 2 + 0.5) * 2 - 0.5
    assert np.abs(ident.kps - expected).max() < 1e-3
    assert ident.bbox[2] > 1024 and ident.bbox.max() <= 2048
    # same face crop up to resampling
    assert np.abs(ident.face_image.astype(int) - planted_identity.face_image.astype(int)).mean() < 6


def test_exif_rotated_jpeg_end_to_end(planted_face_models, default_photo, tmp_path):
    """A sideways-stored JPEG with an EXIF rotation tag is turned upright before detection."""
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 CCW to display
    path = tmp_path / "sideways.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(default_photo, k=-1))).save(path, quality=95, exif=exif)
    ident = extract_identity(planted_face_models, path)
    assert ident.source_size == (512, 512)
    assert np.abs(ident.kps - PLANTED_KPS).max() < 1e-3  # the upright photo's points


def test_grayscale_photo_end_to_end(planted_face_models, default_photo):
    """A grayscale photo runs through and yields a grey face image."""
    gray = cv2.cvtColor(default_photo, cv2.COLOR_RGB2GRAY)
    ident = extract_identity(planted_face_models, gray)
    assert np.array_equal(ident.face_image[:, :, 0], ident.face_image[:, :, 1])
    assert np.array_equal(ident.face_image[:, :, 1], ident.face_image[:, :, 2])


def test_list_and_batch_inputs_return_lists(planted_face_models, default_photo, planted_identity):
    """A list (or a [B,H,W,C] batch with B > 1) gives one Identity per photo, in order."""
    flipped = np.ascontiguousarray(default_photo[:, ::-1])
    idents = extract_identity(planted_face_models, [default_photo, flipped])
    assert isinstance(idents, list) and len(idents) == 2
    assert torch.equal(idents[0].id_cond, planted_identity.id_cond)
    assert not torch.equal(idents[1].id_cond, planted_identity.id_cond)
    batch = torch.from_numpy(np.stack([default_photo, flipped])).float() / 255
    from_batch = extract_identity(planted_face_models, batch)
    assert [torch.equal(a.id_cond, b.id_cond) for a, b in zip(from_batch, idents)] == [True, True]


def test_average_identities(tiny_face_models, photos):
    """Mean ArcFace, re-normalised mean EVA embedding, mean hidden states, best-aligned face image."""
    photo_list = [photos["astronaut"], photos["tom"], np.ascontiguousarray(photos["astronaut"][:, ::-1])]
    idents = extract_identity(tiny_face_models, photo_list)
    avg = average_identities(idents)
    assert torch.allclose(avg.arcface, torch.stack([i.arcface for i in idents]).mean(0), atol=1e-6)
    clip = torch.stack([i.clip_embedding for i in idents]).mean(0)
    assert torch.allclose(avg.clip_embedding, clip / clip.norm(), atol=1e-6)
    assert torch.allclose(avg.clip_embedding.norm(), torch.tensor(1.0), atol=1e-5)
    for k in range(5):
        assert torch.allclose(avg.id_vit_hidden[k], torch.stack([i.id_vit_hidden[k] for i in idents]).mean(0), atol=1e-6)
    best = min(idents, key=lambda i: i.align_error)
    assert avg.face_image is best.face_image and avg.photos == 3
    assert average_identities([idents[0]]) is idents[0]
    with pytest.raises(ValueError):
        average_identities([])


def test_bfloat16_eva(tiny_face_dir, photos, tiny_face_models):
    """dtype=bfloat16 runs EVA-CLIP in bf16 (detectors stay fp32); outputs are float32 and close to fp32."""
    models = load_face_models(tiny_face_dir, dtype=torch.bfloat16)
    assert models.eva.head.weight.dtype == torch.bfloat16
    ident = extract_identity(models, photos["astronaut"])
    ref = extract_identity(tiny_face_models, photos["astronaut"])
    assert ident.id_cond.dtype == torch.float32
    assert np.array_equal(ident.face_image, ref.face_image)  # detection/parsing unaffected
    # like the reference, the ArcFace part is cast to the model dtype before concatenation
    assert torch.equal(ident.arcface, ref.arcface.to(torch.bfloat16).float())
    assert (ident.clip_embedding - ref.clip_embedding).abs().max() < 0.05


@pytest.mark.slow
def test_full_size_eva_gives_the_real_feature_sizes(full_face_dir, photos):
    """With the real-size EVA02-CLIP-L file: id_cond [1,1280] and 5 hidden states [1,577,1024]."""
    models = load_face_models(full_face_dir)
    assert models.eva.cfg.width == 1024 and models.eva.cfg.depth == 24 and models.eva.image_size == 336
    ident = extract_identity(models, photos["astronaut"])
    assert ident.id_cond.shape == (1, 1280)
    assert [tuple(h.shape) for h in ident.id_vit_hidden] == [(1, 577, 1024)] * 5
