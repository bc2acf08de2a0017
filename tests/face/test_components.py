"""Building blocks on their own: NMS, RetinaFace priors/decoding, EVA-CLIP file handling, alignment.

Exact agreement with torchvision/facexlib/consisid_eva_clip is proven in test_reference_parity.py (reference
env); these CI tests check the same rules against small independent implementations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from consisid_core.errors import ModelFilesError
from consisid_core.face.align import FFHQ_TEMPLATE, alignment_error, alignment_matrix, transform_points, warp_face
from consisid_core.face.boxes import iou, nms
from consisid_core.face.eva_clip import (
    EVA_L_336, EVA_TINY, EVAVisionTower, from_official, infer_config, load_eva_visual, rope_tables, to_official,
)
from consisid_core.face.retinaface import decode, priors
from consisid_core.demo.face_models import eva_clip_state


def _greedy_nms(boxes, scores, thr):
    """Textbook greedy NMS with a stable descending order (what torchvision's CPU kernel does)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep, dead = [], set()
    for a, i in enumerate(order):
        if i in dead:
            continue
        keep.append(i)
        for j in order[a + 1:]:
            if j in dead:
                continue
            w = max(0.0, min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0]))
            h = max(0.0, min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1]))
            inter = w * h
            area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
            if inter / (area(boxes[i]) + area(boxes[j]) - inter) > thr:
                dead.add(j)
    return keep


def test_nms_matches_greedy_definition_with_ties():
    """Same kept indices and order as greedy NMS; equal scores keep input order (stable sort)."""
    rng = np.random.default_rng(0)
    for trial in range(20):
        xy = rng.uniform(0, 100, (80, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (80, 2))], 1).astype(np.float32)
        scores = (np.round(rng.uniform(0, 1, 80) * (3 if trial % 2 else 1000)) / 1000).astype(np.float32)
        assert list(nms(boxes, scores, 0.4)) == _greedy_nms(boxes.tolist(), scores.tolist(), 0.4)
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.4).shape == (0,)


def test_iou():
    assert iou([0, 0, 10, 10], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]).tolist() == [1.0, 1 / 3, 0.0]


def test_priors_order_and_values():
    """Priors: per level, row-major cells, both anchor sizes per cell; centres at (j+0.5)*step/W."""
    p = priors(100, 60)
    counts = [math.ceil(100 / s) * math.ceil(60 / s) * 2 for s in (8, 16, 32)]
    assert p.shape == (sum(counts), 4) and p.dtype == torch.float32
    assert torch.allclose(p[0], torch.tensor([0.5 * 8 / 60, 0.5 * 8 / 100, 16 / 60, 16 / 100]))
    assert torch.allclose(p[1], torch.tensor([0.5 * 8 / 60, 0.5 * 8 / 100, 32 / 60, 32 / 100]))
    assert torch.allclose(p[2], torch.tensor([1.5 * 8 / 60, 0.5 * 8 / 100, 16 / 60, 16 / 100]))  # next column
    level2 = p[counts[0]]
    assert torch.allclose(level2, torch.tensor([0.5 * 16 / 60, 0.5 * 16 / 100, 64 / 60, 64 / 100]))


def test_decode_zero_offsets_give_the_prior():
    pri = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    boxes, points = decode(torch.zeros(1, 4), pri, torch.zeros(1, 10))
    assert torch.allclose(boxes, torch.tensor([[0.4, 0.3, 0.6, 0.7]]))
    assert torch.allclose(points, torch.tensor([[0.5, 0.5] * 5]))


def test_eva_state_dict_round_trip_and_config():
    """Official names -> fused q|k|v and w1|w2 -> official names is lossless; sizes are read from the file."""
    gen = torch.Generator().manual_seed(0)
    state = eva_clip_state(gen, EVA_TINY)
    visual = {k[7:]: v for k, v in state.items() if k.startswith("visual.")}
    assert infer_config(visual) == EVA_TINY
    ours = from_official(visual, EVA_TINY, torch.float32)
    back = to_official(ours, EVA_TINY)
    for k, v in back.items():
        assert torch.equal(v.half(), visual[k]), k
    qkv_bias = ours["blocks.0.qkv.bias"]
    assert torch.count_nonzero(qkv_bias[16:32]) == 0  # k has no bias in EVA


def test_full_size_config_is_inferred_from_shapes():
    with torch.device("meta"):
        state = EVAVisionTower(EVA_L_336).state_dict()
    official = to_official(state, EVA_L_336)
    assert infer_config(official) == EVA_L_336  # no rope keys -> head_width 64, as EVA02-CLIP-L


def test_eva_loads_only_visual_keys_from_whole_clip_file(tmp_path):
    """The fp16 whole-CLIP checkpoint is read with visual.* only; text keys are ignored; weights cast to fp32."""
    path = tmp_path / "eva.pt"
    torch.save(eva_clip_state(torch.Generator().manual_seed(0), EVA_TINY), path)
    tower = load_eva_visual(path)
    assert tower.cfg == EVA_TINY and tower.head.weight.dtype == torch.float32
    pooled, hidden = tower(torch.zeros(1, 3, 56, 56))
    assert pooled.shape == (1, 16) and [h.shape for h in hidden] == [(1, 17, 16)] * 5
    torch.save({"text.positional_embedding": torch.zeros(2)}, path)
    with pytest.raises(ModelFilesError, match="visual"):
        load_eva_visual(path)


def test_rope_matches_the_reference_formula():
    """2-D RoPE: first half of the channels follows the patch row, second half the column; CLS untouched."""
    cos, sin = rope_tables(EVA_TINY)  # head_dim 8, grid 4
    assert cos.shape == (17, 8) and torch.equal(cos[0], torch.ones(8)) and torch.equal(sin[0], torch.zeros(8))
    freqs = 1.0 / (10000 ** (torch.arange(0, 4, 2).float() / 4))
    t = torch.arange(4) / 4 * 16
    row, col = 2, 3
    expected = torch.cat([(t[row] * freqs).repeat_interleave(2), (t[col] * freqs).repeat_interleave(2)])
    assert torch.allclose(cos[1 + row * 4 + col], expected.cos())


def test_alignment_maps_points_to_the_template():
    """Points already on the template give the identity transform; error measures residual distance."""
    m = alignment_matrix(FFHQ_TEMPLATE.astype(np.float32))
    assert np.allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-4)
    shifted = FFHQ_TEMPLATE / 2 + 10
    m = alignment_matrix(shifted)
    assert np.allclose(transform_points(shifted, m), FFHQ_TEMPLATE, atol=1e-3)
    assert alignment_error(shifted, m) < 1e-3
    assert alignment_matrix(np.full((5, 2), np.nan)) is None
    crop = warp_face(np.zeros((100, 100, 3), np.uint8), m)
    assert crop.shape == (512, 512, 3) and tuple(crop[0, 0]) == (0, 0, 0)  # inside the photo
    assert tuple(crop[511, 511]) == (135, 133, 132)  # outside: facexlib's grey border (BGR order)
