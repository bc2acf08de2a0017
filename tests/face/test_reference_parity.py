"""Our face pipeline == diffusers' consisid_utils reference, on the same weight files and real photos.

Runs only in the reference environment (torch + torchvision + facexlib + consisid_eva_clip, e.g. the
.venv-ref that .ci/run builds); elsewhere every test skips with the reason printed. Weights are random but in the
official file formats (full-size RetinaFace-R50, BiSeNet, EVA02-CLIP-L-14-336; tiny antelopev2 ONNX).

Reference setup notes:
- prepare_face_models asks onnxruntime for ["CUDAExecutionProvider"]; on a CPU-only onnxruntime it warns
  and falls back to CPU, so the reference runs unpatched.
- facexlib's FaceRestoreHelper also loads parsing_parsenet.pth (then discards it): the factory writes a
  random one (tests/support/parsenet.py) so nothing is downloaded.
- The reference's kps are in the (<=1024 px) working image; ours are in the input photo's pixels, so they
  are mapped back with the same half-pixel convention before comparing (identical when no resize happens).
"""

from __future__ import annotations

import importlib.util
import json
import warnings

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.reference

_NEEDED = ("torchvision", "facexlib", "consisid_eva_clip")
_MISSING = [m for m in _NEEDED if importlib.util.find_spec(m) is None]
if _MISSING:
    _REASON = f"reference packages missing: {', '.join(_MISSING)} (run in the reference environment .ci/run builds, .venv-ref)"
    print(f"\n[face parity] SKIPPED: {_REASON}")
    pytest.skip(_REASON, allow_module_level=True)

from consisid_core.face import extract_identity, load_face_models  # noqa: E402
from consisid_core.demo.face_models import write_face_encoder  # noqa: E402
from support.parsenet import write_parsenet  # noqa: E402

# What is measured (CPU, fp32): features within 1e-5, the same aligned face image, keypoints within 1e-4 px.
TOL_FEATURES = 1e-5
TOL_FACE_LEVELS = 0  # 8-bit levels
TOL_KPS = 1e-4
TINY_EVA_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 56, "layers": 21, "width": 16, "drop_path_rate": 0, "head_width": 8,
                   "mlp_ratio": 2.6667, "patch_size": 14, "eva_model_name": "eva-clip-l-14-336", "xattn": True,
                   "fusedLN": True, "rope": True, "pt_hw_seq_len": 16, "intp_freq": True, "naiveswiglu": True,
                   "subln": True},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 1,
                 "xattn": False, "fusedLN": True},
}


def _reference_utils():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers.pipelines.consisid import consisid_utils
    return consisid_utils


def _prepare_reference(model_dir, tiny_eva: bool = False):
    """prepare_face_models on `model_dir`; with tiny_eva the EVA-L config is swapped for the tiny one."""
    utils = _reference_utils()
    from consisid_eva_clip import factory

    saved = factory._MODEL_CONFIGS["EVA02-CLIP-L-14-336"]
    if tiny_eva:
        factory._MODEL_CONFIGS["EVA02-CLIP-L-14-336"] = TINY_EVA_CONFIG
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return utils.prepare_face_models(str(model_dir), "cpu", torch.float32)
    finally:
        factory._MODEL_CONFIGS["EVA02-CLIP-L-14-336"] = saved


def _run_reference(ref, image):
    helper1, helper2, clip, app, mean, std = ref
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _reference_utils().process_face_embeddings_infer(
            helper1, clip, helper2, mean, std, app, "cpu", torch.float32, image, is_align_face=True)


def _compare(ours, ref_out) -> dict:
    id_cond, hidden, image, kps = ref_out
    sx, sy = ours.source_size[0] / ours.work_size[0], ours.source_size[1] / ours.work_size[1]
    ours_kps_work = (ours.kps.astype(np.float64) + 0.5) / np.array([sx, sy]) - 0.5 if (sx, sy) != (1, 1) else ours.kps
    return {
        "id_cond": (ours.id_cond - id_cond.float()).abs().max().item(),
        "arcface": (ours.arcface - id_cond[:, :512].float()).abs().max().item(),
        "id_vit_hidden": max((a - b.float()).abs().max().item() for a, b in zip(ours.id_vit_hidden, hidden)),
        "face_image": int(np.abs(ours.face_image.astype(int) - np.asarray(image).astype(int)).max()),
        "kps": float(np.abs(np.asarray(ours_kps_work, np.float64) - np.asarray(kps, np.float64)).max()),
        "shapes": [tuple(id_cond.shape), [tuple(h.shape) for h in hidden], np.asarray(image).shape],
    }


def _assert_parity(diffs: dict) -> None:
    assert diffs["id_cond"] <= TOL_FEATURES and diffs["id_vit_hidden"] <= TOL_FEATURES
    assert diffs["face_image"] <= TOL_FACE_LEVELS and diffs["kps"] <= TOL_KPS


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity_full")
    write_face_encoder(root, eva="full", seed=0)
    write_parsenet(root)
    return root


@pytest.fixture(scope="module")
def full_pair(full_dir):
    return load_face_models(full_dir), _prepare_reference(full_dir)


@pytest.mark.parametrize("photo", ["astronaut", "t1", "tom"])
def test_reference_mode_matches_reference(full_pair, photos, photo):
    """face_selection='reference' == process_face_embeddings_infer(is_align_face=True), full-size EVA.

    t1 (1280 px, several detections) exercises the 1024 resize and the reference's mixed choice
    (largest antelopev2 face for ArcFace, most central RetinaFace face for the crop)."""
    ours_models, ref = full_pair
    ref_out = _run_reference(ref, photos[photo])
    ours = extract_identity(ours_models, photos[photo], "reference")
    diffs = _compare(ours, ref_out)
    print(f"\n[face parity] {photo}: " + json.dumps({k: v for k, v in diffs.items() if k != "shapes"}))
    assert diffs["shapes"] == [(1, 1280), [(1, 577, 1024)] * 5, (512, 512, 3)]
    assert ours.face_count > 1  # the random detectors produce several faces: selection is exercised
    _assert_parity(diffs)


@pytest.fixture(scope="module")
def fallback_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity_fallback")
    write_face_encoder(root, eva="tiny", seed=1, antelopev2_fires=False)
    write_parsenet(root)
    return load_face_models(root), _prepare_reference(root, tiny_eva=True)


def test_insightface_miss_fallback_matches_reference(fallback_pair, photos):
    """antelopev2 finds nothing: RetinaFace kps and glintr100 on the aligned crop, as the reference."""
    ours_models, ref = fallback_pair
    ours = extract_identity(ours_models, photos["astronaut"], "reference")
    diffs = _compare(ours, _run_reference(ref, photos["astronaut"]))
    print("\n[face parity] fallback astronaut: " + json.dumps({k: v for k, v in diffs.items() if k != "shapes"}))
    assert ours.embedding_source == "aligned_crop"
    _assert_parity(diffs)


def test_retinaface_miss_reference_crashes_we_align(tmp_path_factory, photos):
    """RetinaFace finds nothing: the reference raises RuntimeError; we align with antelopev2's points."""
    root = tmp_path_factory.mktemp("parity_silent_retina")
    write_face_encoder(root, eva="tiny", seed=2, retinaface_fires=False)
    write_parsenet(root)
    ref = _prepare_reference(root, tiny_eva=True)
    with pytest.raises(RuntimeError, match="align face fail"):
        _run_reference(ref, photos["astronaut"])
    ours = extract_identity(load_face_models(root), photos["astronaut"], "reference")
    assert ours.aligned_with == "antelopev2" and ours.face_image.shape == (512, 512, 3)


# ----------------------------------------------------------------------- components, exact


def test_nms_equals_torchvision_including_ties():
    """Our NMS keeps exactly torchvision.ops.nms's indices, in its order, also with tied scores."""
    import torchvision

    from consisid_core.face.boxes import nms

    gen = torch.Generator().manual_seed(0)
    for trial in range(30):
        n = 300
        xy = torch.rand(n, 2, generator=gen) * 200
        wh = torch.rand(n, 2, generator=gen) * 60 + 1
        boxes = torch.cat([xy, xy + wh], 1)
        scores = torch.round(torch.rand(n, generator=gen) * (5 if trial % 2 else 1000)) / 1000  # many ties on odd trials
        for thr in (0.3, 0.4, 0.7):
            expected = torchvision.ops.nms(boxes, scores, thr).numpy()
            assert np.array_equal(nms(boxes.numpy(), scores.numpy(), thr), expected)


def test_retinaface_detections_bit_identical(full_dir, photos):
    """RetinaFace boxes, scores and landmarks are bit-identical to facexlib's detect_faces(img, 0.97)."""
    import cv2
    from facexlib.detection import init_detection_model

    from consisid_core.face.resize import resize_long_edge
    from consisid_core.face.retinaface import load_retinaface

    theirs = init_detection_model("retinaface_resnet50", device="cpu", model_rootpath=str(full_dir / "face_encoder"))
    ours = load_retinaface(full_dir / "face_encoder" / "detection_Resnet50_Final.pth")
    for name in ("astronaut", "tom"):
        bgr = cv2.cvtColor(resize_long_edge(photos[name]), cv2.COLOR_RGB2BGR)
        with torch.no_grad():
            expected = theirs.detect_faces(bgr, 0.97)
        got = ours.raw_detect(bgr)
        assert got.shape == expected.shape and got.shape[0] > 0
        assert np.array_equal(got, expected)


def test_bisenet_logits_bit_identical(full_dir, photos):
    """BiSeNet main-head logits are bit-identical to facexlib's (on the same input tensor)."""
    from facexlib.parsing import init_parsing_model

    from consisid_core.face.bisenet import load_bisenet

    theirs = init_parsing_model("bisenet", device="cpu", model_rootpath=str(full_dir / "face_encoder"))
    ours = load_bisenet(full_dir / "face_encoder" / "parsing_bisenet.pth")
    x = torch.from_numpy(np.ascontiguousarray(photos["astronaut"]).transpose(2, 0, 1)).float().unsqueeze(0) / 255
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x)[0])


def test_eva_preprocess_matches_torchvision_resize():
    """torchvision 0.29's tensor resize(BICUBIC) is interpolate(bicubic, antialias=True): same values."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import normalize, resize

    from consisid_core.face.eva_clip import OPENAI_MEAN, OPENAI_STD, preprocess

    x = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(0))
    expected = normalize(resize(x, 336, InterpolationMode.BICUBIC), OPENAI_MEAN, OPENAI_STD)
    assert torch.equal(preprocess(x, 336, torch.float32), expected)


def test_tiny_eva_tower_matches_consisid_eva_clip(tmp_path):
    """Our EVA tower loaded from the official-format file == consisid_eva_clip's EVAVisionTransformer."""
    from consisid_eva_clip.factory import load_checkpoint
    from consisid_eva_clip.model import CustomCLIP

    from consisid_core.face.eva_clip import load_eva_visual

    root = tmp_path / "m"
    write_face_encoder(root, eva="tiny", seed=3)
    path = root / "face_encoder" / "EVA02_CLIP_L_336_psz14_s6B.pt"
    import os

    os.environ["RoPE"] = "1"  # what create_model sets for this config
    model = CustomCLIP(**TINY_EVA_CONFIG)
    load_checkpoint(model, str(path), strict=False)
    theirs = model.visual.eval()
    ours = load_eva_visual(path)
    x = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pooled, hidden = theirs(x, return_all_features=False, return_hidden=True, shuffle=False)
        our_pooled, our_hidden = ours(x)
    assert (pooled - our_pooled).abs().max() < 1e-5
    assert len(hidden) == len(our_hidden) == 5
    assert max((a - b).abs().max().item() for a, b in zip(hidden, our_hidden)) < 1e-5
