"""Data flow at stage boundaries: a bf16 engine fed fp32 inputs (ComfyUI's CLIP, a face model in fp32) gives the
same result as bf16 inputs; the noise device picks the generator; one image normaliser for engine and face pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import consisid_core
from consisid_core.engine import engine as engine_module
from consisid_core.engine.conditioning import to_pil_rgb
from consisid_core.engine.engine import ConsisIDEngine
from consisid_core.image_input import load_rgb
from consisid_core.runtime import resolve_runtime
from support.engine_inputs import PROMPT, face_image, identity

SIZE = dict(height=32, width=48)


@pytest.fixture(scope="module")
def bf16_engine(tiny_model):
    return consisid_core.load_engine(tiny_model, device="cpu", dtype="bf16")


@pytest.fixture(scope="module")
def engine(tiny_model):
    return consisid_core.load_engine(tiny_model, device="cpu", dtype="fp32")


def _embeddings(engine, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, engine.info.text_len, engine.info.text_embed_dim, generator=gen)


def test_fp32_text_embeddings_are_cast_once_at_the_boundary(bf16_engine):
    """ComfyUI's CLIP T5 hands fp32 CPU tensors; the stage output is in the engine's dtype and device."""
    pos, neg = _embeddings(bf16_engine, 0), _embeddings(bf16_engine, 1)
    from_fp32 = bf16_engine.text_from_embeddings(pos, neg)
    from_bf16 = bf16_engine.text_from_embeddings(pos.bfloat16(), neg.bfloat16())
    for tensor in (from_fp32.prompt_embeds, from_fp32.negative_embeds):
        assert tensor.dtype == torch.bfloat16 and tensor.device == bf16_engine.device
    assert torch.equal(from_fp32.prompt_embeds, from_bf16.prompt_embeds)
    assert torch.equal(from_fp32.negative_embeds, from_bf16.negative_embeds)


def test_fp32_identity_features_give_the_bf16_face_tokens(bf16_engine):
    id_cond, hidden = identity()
    from_fp32 = bf16_engine.encode_local(id_cond, hidden).face_tokens
    from_bf16 = bf16_engine.encode_local(id_cond.bfloat16(), [h.bfloat16() for h in hidden]).face_tokens
    assert from_fp32.dtype == torch.bfloat16
    assert torch.equal(from_fp32, from_bf16)


def test_bf16_engine_fed_fp32_inputs_makes_the_bf16_video(bf16_engine):
    """The whole sampled video is the same whether the stages get fp32 or bf16 inputs."""
    id_cond, hidden = identity()
    pos, neg = _embeddings(bf16_engine, 0), _embeddings(bf16_engine, 1)
    global_cond = bf16_engine.encode_global(face_image(), **SIZE)

    def run(text, local):
        video = bf16_engine.denoise(text, global_cond, local, num_frames=9, num_inference_steps=2, seed=3)
        assert video.latents.dtype == torch.bfloat16
        return video.latents

    fp32 = run(bf16_engine.text_from_embeddings(pos, neg), bf16_engine.encode_local(id_cond, hidden))
    bf16 = run(bf16_engine.text_from_embeddings(pos.bfloat16(), neg.bfloat16()),
               bf16_engine.encode_local(id_cond.bfloat16(), [h.bfloat16() for h in hidden]))
    assert torch.equal(fp32, bf16)


# ---- noise device --------------------------------------------------------------------------------------------

@pytest.fixture
def on_fake_gpu(monkeypatch):
    """The engine reports cuda:0 and every generator request is recorded (made on the CPU so nothing needs CUDA)."""
    made: list[torch.device] = []

    def record(device, seed):
        made.append(torch.device(device))
        return torch.Generator("cpu").manual_seed(int(seed))

    monkeypatch.setattr(engine_module, "noise_generator", record)
    monkeypatch.setattr(ConsisIDEngine, "device", property(lambda self: torch.device("cuda", 0)))
    return made


def test_gpu_noise_uses_a_generator_on_the_engine_device(engine, on_fake_gpu):
    engine.make_generator(7, "gpu")
    engine.make_generator(7, "cpu")
    gpu_default = dataclasses.replace(engine, runtime=resolve_runtime(device="cpu", dtype="fp32", noise_device="gpu"))
    gpu_default.make_generator(7)
    cpu_default = dataclasses.replace(engine, runtime=resolve_runtime(device="cpu", dtype="fp32"))
    cpu_default.make_generator(7)
    assert on_fake_gpu == [torch.device("cuda", 0), torch.device("cpu"), torch.device("cuda", 0), torch.device("cpu")]


def test_generate_passes_the_noise_device_on(engine, monkeypatch):
    seen = []
    original = engine_module.generator_device
    monkeypatch.setattr(engine_module, "generator_device", lambda nd, dev: seen.append(nd) or original(nd, dev))
    id_cond, hidden = identity()
    kwargs = dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, num_frames=9, num_inference_steps=1,
                  seed=4, **SIZE)
    on_gpu = engine.generate(PROMPT, noise_device="gpu", **kwargs)
    on_cpu = engine.generate(PROMPT, noise_device="cpu", **kwargs)
    assert seen == ["gpu", "cpu"]
    assert torch.equal(on_gpu, on_cpu), "on a CPU engine both draw from a CPU generator"
    with pytest.raises(consisid_core.UnsupportedInputError, match="noise_device must be"):
        engine.generate(PROMPT, noise_device="cuda", **kwargs)


# ---- one image normaliser --------------------------------------------------------------------------------------

def _rgba() -> np.ndarray:
    rgb = np.array(face_image())
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    return np.dstack([rgb, alpha])


@pytest.mark.parametrize("name, image", [
    ("RGBA uint8", _rgba()),
    ("RGBA IMAGE tensor", torch.from_numpy(_rgba()).float()[None] / 255.0),
    ("float 0..255", np.array(face_image()).astype(np.float32)),
    ("uint16", np.array(face_image()).astype(np.uint16) * 257),
    ("grey", np.array(face_image())[:, :, 0]),
])
def test_engine_reads_images_like_the_face_pipeline(engine, name, image):
    expected = load_rgb(image)
    assert np.array_equal(np.array(to_pil_rgb(image)), expected), name
    post = engine.encode_global(image, **SIZE).image_posterior
    assert torch.equal(post, engine.encode_global(expected, **SIZE).image_posterior), name


def test_rgba_is_composited_on_white_and_float_255_is_not_saturated():
    rgba = _rgba()
    composited = np.array(to_pil_rgb(rgba)).astype(int)
    assert composited[:, 0].min() == 255, "alpha 0 -> white"
    assert np.array_equal(composited[:, -1], rgba[:, -1, :3]), "alpha 255 -> the colour itself"
    rgb = np.array(face_image())
    assert np.array_equal(np.array(to_pil_rgb(rgb.astype(np.float32))), rgb)


def _video(channels: int = 3) -> np.ndarray:
    """4 frames of the face, the last channel of an RGBA video a left-to-right alpha ramp."""
    frames = np.stack([np.roll(np.array(face_image()), 7 * k, axis=1) for k in range(4)])
    if channels == 4:
        ramp = np.tile(np.linspace(0, 255, frames.shape[2]).astype(np.uint8), (4, frames.shape[1], 1))
        frames = np.concatenate([frames, ramp[..., None]], axis=-1)
    return frames


@pytest.mark.parametrize("name, video", [
    ("float [0,1] tensor with overshoot", torch.from_numpy(_video()).float() / 255.0 * 1.04 - 0.01),
    ("RGBA float tensor", torch.from_numpy(_video(4)).float() / 255.0),
    ("float 0..255", _video().astype(np.float32)),
    ("uint8", _video()),
])
def test_photos_canvas_images_and_frames_share_one_normaliser(name, video):
    """Frames for the mp4 and for scoring are read exactly like photos and canvas images (frame by frame)."""
    from consisid_core.metrics.protocol import video_frames
    from consisid_core.video import frames_to_uint8

    expected = np.stack([load_rgb(frame) for frame in video])
    assert np.array_equal(frames_to_uint8(video), expected), name
    if video.shape[-1] == 3:  # scoring takes RGB videos only
        assert np.array_equal(np.stack(video_frames(video)), expected), name


def test_float_ranges_follow_one_rule():
    """Floats are [0, 1] (a small overshoot is clipped, not read as 0..255); past 2 an image is 0..255, decided
    once per batch so a dark frame of a 0..255 video is not blown up."""
    from consisid_core.image_input import batch_to_rgb

    over = np.full((8, 8, 3), 1.3, np.float32)
    assert load_rgb(over).min() == 255, "overshoot -> white"
    assert load_rgb(over * 100).max() == round(130 / 255 * 255), "a 0..255 image is divided by 255"
    dark_then_bright = np.stack([np.full((8, 8, 3), 1.5, np.float32), np.full((8, 8, 3), 200.0, np.float32)])
    out = batch_to_rgb(dark_then_bright)
    assert out[0].max() == 2 and out[1].min() == 200


def test_fp32_latents_decode_like_bf16_ones(bf16_engine):
    """Latents kept or edited in fp32 (e.g. by another node) enter the bf16 VAE cast once at the boundary."""
    from consisid_core.engine.stages import LatentVideo

    gen = torch.Generator().manual_seed(5)
    shape = (1, bf16_engine.info.latent_frames(9), bf16_engine.info.latent_channels, 4, 6)
    latents = torch.randn(shape, generator=gen)
    from_fp32 = bf16_engine.decode(LatentVideo(latents, 32, 48, 9))
    from_bf16 = bf16_engine.decode(LatentVideo(latents.bfloat16(), 32, 48, 9))
    assert from_fp32.dtype == torch.float32 and torch.equal(from_fp32, from_bf16)


def test_hand_made_fp32_conditioning_samples_like_bf16(bf16_engine):
    """Stage values built outside the engine (fp32 tensors) are cast where the sampler takes them in."""
    from consisid_core.engine.stages import GlobalConditioning, LocalConditioning, TextConditioning

    id_cond, hidden = identity()
    text = bf16_engine.text_from_embeddings(_embeddings(bf16_engine, 0), _embeddings(bf16_engine, 1))
    glob = bf16_engine.encode_global(face_image(), **SIZE)
    local = bf16_engine.encode_local(id_cond, hidden)
    as_fp32 = (TextConditioning(text.prompt_embeds.float(), text.negative_embeds.float()),
               GlobalConditioning(glob.image_posterior.float(), None, glob.height, glob.width),
               LocalConditioning(local.face_tokens.float(), local.face_scale))

    def sample(text, glob, local):
        return bf16_engine.denoise(text, glob, local, num_frames=9, num_inference_steps=2, seed=9).latents

    assert torch.equal(sample(*as_fp32), sample(text, glob, local))
