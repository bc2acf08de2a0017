"""engine.generate equals diffusers.ConsisIDPipeline (float32, CPU) on tiny random models."""

from __future__ import annotations

import pytest
import torch

import consisid_core

from support.engine_inputs import PROMPT, face_image, identity, reference_frames

TOL = 1e-4

CASES = {
    "cfg": dict(guidance_scale=6.0),
    "no_cfg": dict(guidance_scale=1.0),
    "dynamic_cfg": dict(guidance_scale=6.0, use_dynamic_cfg=True),
    "negative_prompt": dict(guidance_scale=4.5, negative_prompt="blurry dark sad face"),
}


@pytest.fixture(scope="module")
def engine(tiny_model):
    return consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generate_matches_reference(engine, tiny_model, case):
    kwargs = dict(CASES[case])
    id_cond, hidden = identity()
    common = dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, height=32, width=48, num_frames=9,
                  num_inference_steps=4, **kwargs)
    ours = engine.generate(PROMPT, seed=7, **{k: v for k, v in common.items() if k != "negative_prompt"},
                           negative_prompt=kwargs.get("negative_prompt", ""))
    ref = reference_frames(tiny_model, seed=7, prompt=PROMPT, **common)
    assert ours.shape == (9, 32, 48, 3) and ours.dtype == torch.float32
    assert (ours - ref).abs().max().item() <= TOL
    # the comparison is meaningful: another seed gives another video
    other = engine.generate(PROMPT, seed=8, **{k: v for k, v in common.items() if k != "negative_prompt"},
                            negative_prompt=kwargs.get("negative_prompt", ""))
    assert (other - ref).abs().max().item() > 1e-3


def test_is_kps_checkpoint_matches_reference(tiny_model_factory):
    folder = tiny_model_factory(is_kps=True)
    engine = consisid_core.load_engine(folder, device="cpu", dtype=torch.float32)
    id_cond, hidden = identity()
    kps = [[20.0, 24.0], [44.0, 24.0], [32.0, 36.0], [22.0, 48.0], [42.0, 48.0]]
    common = dict(image=face_image(size=64), id_cond=id_cond, id_vit_hidden=hidden, height=32, width=48,
                  num_frames=9, num_inference_steps=3, guidance_scale=6.0)
    ours = engine.generate(PROMPT, seed=3, kps_cond=kps, **common)
    ref = reference_frames(folder, seed=3, prompt=PROMPT, kps_cond=kps, **common)
    assert (ours - ref).abs().max().item() <= TOL
    # keypoints really enter the conditioning of an is_kps checkpoint
    moved = [[x + 6, y] for x, y in kps]
    assert (engine.generate(PROMPT, seed=3, kps_cond=moved, **common) - ref).abs().max().item() > 1e-4


@pytest.mark.parametrize("tokenizer", ["spiece", "json"])
def test_both_tokenizer_forms_match_reference(tiny_model_factory, tokenizer):
    folder = tiny_model_factory(tokenizer=tokenizer)
    engine = consisid_core.load_engine(folder, device="cpu", dtype=torch.float32)
    id_cond, hidden = identity()
    common = dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, height=32, width=48, num_frames=9,
                  num_inference_steps=2, guidance_scale=6.0)
    ours = engine.generate(PROMPT, seed=11, **common)
    ref = reference_frames(folder, seed=11, prompt=PROMPT, **common)
    assert (ours - ref).abs().max().item() <= TOL
