"""Stage-by-stage generation equals `generate`; identity tokens are computed once; callbacks; memory modes."""

from __future__ import annotations

import pytest
import torch

import consisid_core
from support.engine_inputs import PROMPT, face_image, identity

SETTINGS = dict(height=32, width=48, num_frames=9, num_inference_steps=3, guidance_scale=6.0)


@pytest.fixture(scope="module")
def engine(tiny_model):
    return consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)


def _stages(engine, seed, callback=None):
    id_cond, hidden = identity()
    text = engine.encode_text(PROMPT, "ugly", with_negative=SETTINGS["guidance_scale"] > 1)
    global_cond = engine.encode_global(face_image(), height=32, width=48)
    local = engine.encode_local(id_cond, hidden)
    video = engine.denoise(text, global_cond, local, num_frames=9, num_inference_steps=3, guidance_scale=6.0,
                           seed=seed, callback=callback)
    return engine.decode(video)


def test_stages_equal_generate_bit_for_bit(engine):
    id_cond, hidden = identity()
    full = engine.generate(PROMPT, "ugly", image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, seed=5, **SETTINGS)
    staged = _stages(engine, seed=5)
    assert torch.equal(full, staged)


def test_face_extractor_runs_once_per_generation(engine, monkeypatch):
    calls = []
    lfe = engine.transformer.local_facial_extractor
    original = lfe.forward
    monkeypatch.setattr(lfe, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    id_cond, hidden = identity()
    engine.generate(PROMPT, image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, seed=1, **SETTINGS)
    assert len(calls) == 1


def test_callback_every_step_with_latents(engine):
    seen = []
    _stages(engine, seed=2, callback=lambda step, total, latents: seen.append((step, total, tuple(latents.shape))))
    assert [s[0] for s in seen] == [1, 2, 3]
    assert all(total == 3 for _, total, _ in seen)
    assert seen[0][2] == (1, 3, 4, 4, 6)


def test_callback_exception_aborts_and_engine_still_works(engine):
    def cancel(step, total, latents):
        if step == 2:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        _stages(engine, seed=2, callback=cancel)
    assert _stages(engine, seed=2).shape == (9, 32, 48, 3)


def test_face_scale_changes_output_and_default_comes_from_config(engine):
    id_cond, hidden = identity()
    assert engine.encode_local(id_cond, hidden).face_scale == engine.transformer.config.local_face_scale
    base = _stages(engine, seed=4)
    text = engine.encode_text(PROMPT, "ugly")
    g = engine.encode_global(face_image(), height=32, width=48)
    strong = engine.decode(engine.denoise(text, g, engine.encode_local(id_cond, hidden, face_scale=3.0), num_frames=9,
                                          num_inference_steps=3, seed=4))
    assert (strong - base).abs().max() > 1e-4


def test_different_faces_give_different_videos(engine):
    id_cond, hidden = identity(seed=0)
    other_cond, other_hidden = identity(seed=1)
    a = engine.generate(PROMPT, image=face_image(0), id_cond=id_cond, id_vit_hidden=hidden, seed=1, **SETTINGS)
    b = engine.generate(PROMPT, image=face_image(0), id_cond=other_cond, id_vit_hidden=other_hidden, seed=1, **SETTINGS)
    c = engine.generate(PROMPT, image=face_image(1), id_cond=id_cond, id_vit_hidden=hidden, seed=1, **SETTINGS)
    assert (a - b).abs().max() > 1e-4 and (a - c).abs().max() > 1e-4


@pytest.mark.parametrize("mode", ["model_offload", "sequential_offload"])
def test_memory_modes_give_identical_frames(tiny_model, engine, mode):
    """On the CPU the modes cannot save memory, but their hooks and moves must not change a single value."""
    offloaded = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32, memory_mode=mode)
    id_cond, hidden = identity()
    kwargs = dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, seed=9, **SETTINGS)
    assert torch.equal(offloaded.generate(PROMPT, **kwargs), engine.generate(PROMPT, **kwargs))
    if mode == "sequential_offload":
        assert offloaded.placement._streamers, "sequential offload attaches per-layer hooks"
    offloaded.release()
    assert not offloaded.placement._streamers
    assert torch.equal(offloaded.generate(PROMPT, **kwargs), engine.generate(PROMPT, **kwargs))


def test_vae_tiling_switch_is_scoped_to_decode(engine):
    text = engine.encode_text(PROMPT)
    id_cond, hidden = identity()
    video = engine.denoise(text, engine.encode_global(face_image(), height=32, width=48),
                           engine.encode_local(id_cond, hidden), num_frames=9, num_inference_steps=2, seed=1)
    engine.vae.tile_sample_min_height, engine.vae.tile_sample_min_width = 16, 16
    engine.vae.tile_latent_min_height, engine.vae.tile_latent_min_width = 2, 2
    # default overlap factors (1/6) do not stitch at this tile size in diffusers; decode must still fit
    tiled = engine.decode(video, tiling=True)
    plain = engine.decode(video)
    assert tiled.shape == plain.shape == (9, 32, 48, 3)
    assert not torch.equal(tiled, plain), "tiling really ran"
    assert engine.vae.use_tiling is False
    assert engine.vae.tile_overlap_factor_height == 1 / 6, "tile settings restored after decode"


def test_generator_on_device_option(tiny_model):
    eng = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32, noise_device="gpu")
    assert eng.runtime.noise_device == "gpu"
    assert eng.make_generator(3).device.type == "cpu"  # 'gpu' = the engine's device, here the CPU
