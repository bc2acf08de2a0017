"""Attention backends: our pluggable joint-attention processor computes what diffusers' processor computes."""

from __future__ import annotations

import pytest
import torch

import consisid_core
from consisid_core.runtime.attention import available_backends
from support.engine_inputs import PROMPT, face_image, identity

SETTINGS = dict(height=32, width=48, num_frames=9, num_inference_steps=2, guidance_scale=6.0, seed=4)


@pytest.fixture(scope="module")
def engine(tiny_model):
    return consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)


def _frames(engine):
    id_cond, hidden = identity()
    return engine.generate(PROMPT, image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, **SETTINGS)


def test_pluggable_processor_matches_diffusers_processor(engine):
    baseline = _frames(engine)
    engine.attention = "sdpa_processor"  # our processor driving torch SDPA: the path sage/flash plug into
    try:
        ours = _frames(engine)
    finally:
        engine.attention = "sdpa"
    assert (ours - baseline).abs().max() <= 1e-5
    default_processor = type(engine.transformer.transformer_blocks[0].attn1.processor).__name__
    assert default_processor != "JointAttentionProcessor", "the processor is restored after denoising"


def test_sdpa_math_kernel_runs_on_cpu(engine):
    baseline = _frames(engine)
    engine.attention = "sdpa_math"
    try:
        assert (_frames(engine) - baseline).abs().max() <= 1e-5
    finally:
        engine.attention = "sdpa"


def test_available_backends_lists_sdpa_first():
    names = available_backends()
    assert names[0] == "sdpa" and "sdpa_math" in names
