"""Size, frame-count and prompt checks: clear refusals, snapping and warnings before any sampling."""

from __future__ import annotations

import warnings

import pytest
import torch

import consisid_core
from consisid_core.engine.checks import is_valid_frame_count, snap_frames
from consisid_core.errors import UnsupportedInputError
from consisid_core.notices import ConsisIDWarning
from support.engine_inputs import PROMPT, face_image, identity, reference_frames


@pytest.fixture(scope="module")
def engine(tiny_model):
    return consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)


def _generate(engine, **kwargs):
    id_cond, hidden = identity()
    settings = dict(height=32, width=48, num_frames=9, num_inference_steps=2, seed=1)
    settings.update(kwargs)
    return engine.generate(PROMPT, image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, **settings)


def test_learned_positions_refuse_other_sizes_before_diffusers(engine):
    with pytest.raises(UnsupportedInputError, match=r"only generates 48x32 \(width x height\); got 64x32"):
        _generate(engine, width=64)
    with pytest.raises(UnsupportedInputError, match="learned positional embeddings"):
        engine.encode_global(face_image(), height=48, width=48)


def test_sizes_must_be_multiples_of_16(tiny_model_factory):
    engine = consisid_core.load_engine(tiny_model_factory(learned_positions=False), device="cpu", dtype=torch.float32)
    with pytest.raises(UnsupportedInputError, match="multiples of 16; got 40x32"):
        _generate(engine, width=40)


def test_non_learned_checkpoint_generates_other_sizes_like_the_reference(tiny_model_factory):
    folder = tiny_model_factory(learned_positions=False)
    engine = consisid_core.load_engine(folder, device="cpu", dtype=torch.float32)
    id_cond, hidden = identity()
    kwargs = dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, height=48, width=64, num_frames=9,
                  num_inference_steps=2, guidance_scale=6.0)
    ours = engine.generate(PROMPT, seed=2, **kwargs)
    ref = reference_frames(folder, seed=2, prompt=PROMPT, **kwargs)
    assert ours.shape == (9, 48, 64, 3)
    assert (ours - ref).abs().max() <= 1e-4


@pytest.mark.parametrize("frames, expected", [(9, 9), (10, 9), (12, 9), (13, 17), (49, 49), (50, 49), (48, 49), (2, 9)])
def test_frame_snapping_rule(engine, frames, expected):
    assert snap_frames(engine.info, frames) == expected
    assert is_valid_frame_count(engine.info, expected)


def test_invalid_frame_count_is_snapped_with_a_warning(engine):
    with pytest.warns(ConsisIDWarning, match=r"num_frames=12 would not decode to exactly that many frames.*Using 9"):
        frames = _generate(engine, num_frames=12)
    assert frames.shape[0] == 9


def test_invalid_frame_count_refused_in_strict_mode(engine):
    with pytest.raises(UnsupportedInputError, match="8k\\+1 frames"):
        engine.check_settings(32, 48, 12, snap_frames=False)


def test_denoise_snaps_or_refuses_as_asked(engine):
    from support.engine_inputs import face_image, identity

    text = engine.encode_text("a man", with_negative=False)
    assert text.negative_embeds is None, "no CFG: the negative prompt is not encoded"
    g = engine.encode_global(face_image(), height=32, width=48)
    local = engine.encode_local(*identity())
    with pytest.raises(UnsupportedInputError, match="8k\\+1 frames"):
        engine.denoise(text, g, local, num_frames=12, num_inference_steps=1, guidance_scale=1.0, snap_frames=False)
    with pytest.warns(ConsisIDWarning, match="Using 9"):
        video = engine.denoise(text, g, local, num_frames=12, num_inference_steps=1, guidance_scale=1.0)
    assert video.num_frames == 9


def test_non_native_frame_count_warns_about_quality(engine):
    with pytest.warns(ConsisIDWarning, match="differs from the checkpoint's native 9.*quality will drop"):
        frames = _generate(engine, num_frames=17)
    assert frames.shape == (17, 32, 48, 3)


def test_generate_warns_once(engine):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _generate(engine, num_frames=17)
    assert sum(issubclass(w.category, ConsisIDWarning) for w in caught) == 1


def test_native_settings_do_not_warn(engine):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConsisIDWarning)
        _generate(engine)


def test_long_prompt_is_truncated_with_a_warning(engine):
    long_prompt = " ".join(["man walks in the city street at night"] * 10)
    with pytest.warns(ConsisIDWarning, match="longer than the model's 16 tokens"):
        text = engine.encode_text(long_prompt)
    assert text.prompt_embeds.shape == (1, 16, 32)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_inference_steps=0), "num_inference_steps must be"),
    (dict(guidance_scale=-1.0), "guidance_scale must be"),
    (dict(num_frames=9.5), "num_frames must be an integer"),
])
def test_bad_sampling_settings(engine, kwargs, message):
    with pytest.raises(UnsupportedInputError, match=message):
        _generate(engine, **kwargs)


def test_bad_identity_inputs(engine):
    with pytest.raises(UnsupportedInputError, match=r"id_cond must be \[1, 528\]"):
        engine.encode_local(torch.zeros(1, 1280), identity()[1])
    with pytest.raises(UnsupportedInputError, match="identity features are missing"):
        engine.encode_local(None, None)
    with pytest.raises(UnsupportedInputError, match="face image must be"):
        engine.encode_global("face.png", height=32, width=48)


def test_face_image_forms_are_equivalent(engine):
    import numpy as np

    pil = face_image()
    array = np.array(pil)
    tensor = torch.from_numpy(array).float() / 255.0
    posteriors = [engine.encode_global(img, height=32, width=48).image_posterior for img in (pil, array, tensor[None])]
    assert torch.equal(posteriors[0], posteriors[1]) and torch.equal(posteriors[0], posteriors[2])
