"""ConsisID Text Encode with ComfyUI's own T5 (a core CLIP) matches the model's T5 path token for token, and the
latent preview map fitted from the VAE predicts colours."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch

from comfy_stub.clip import NotT5Clip, T5OnlySD3Clip
from support.pack import pack_module

PROMPT = "a woman smiles at the camera in the park"


@pytest.fixture
def model_and_encoder(comfyui):
    (handle,) = comfyui.mappings["ConsisIDModelLoader"].execute("ConsisID-preview", "fp32", "none", "sdpa")
    engine = handle.get()
    return handle, engine, comfyui.mappings["ConsisIDTextEncode"]


@pytest.mark.parametrize("prompt", [PROMPT, "a man walks " * 20, ""])
def test_core_clip_t5_gives_the_same_embeddings_as_the_model_t5(model_and_encoder, prompt):
    handle, engine, node = model_and_encoder
    clip = T5OnlySD3Clip(engine.tokenizer, engine.text_encoder)
    (ours,) = node.execute(handle, prompt, "dark", clip=None)
    (theirs,) = node.execute(handle, prompt, "dark", clip=clip)
    assert theirs.source == "CLIP input"
    assert torch.equal(theirs.conditioning.prompt_embeds, ours.conditioning.prompt_embeds)
    assert torch.equal(theirs.conditioning.negative_embeds, ours.conditioning.negative_embeds)
    assert all(len(ids) == engine.info.text_len for ids in clip.encoded), "padded or cut to the model's text length"


def test_fixed_length_tokens_keep_weights_and_cut_long_prompts():
    clip_text = pack_module("nodes.clip_text")
    tokens = {"l": [[(1, 1.0)]], "t5xxl": [[(5, 1.2), (6, 1.0), (1, 1.0)] + [(0, 1.0)] * 74]}
    fixed, cut = clip_text.fixed_length_tokens(tokens, 4)
    assert fixed == {"l": [], "t5xxl": [[(5, 1.2), (6, 1.0), (1, 1.0), (0, 1.0)]]} and not cut
    fixed, cut = clip_text.fixed_length_tokens({"t5xxl": [[(7, 1.0)] * 10 + [(1, 1.0)]]}, 4)
    assert fixed["t5xxl"][0] == [(7, 1.0)] * 3 + [(1, 1.0)] and cut


def test_a_clip_without_t5_is_a_node_error(model_and_encoder):
    handle, _engine, node = model_and_encoder
    with pytest.raises(Exception) as error:
        node.execute(handle, PROMPT, "", clip=NotT5Clip())
    assert str(error.value).startswith("ConsisID Text Encode (ConsisIDTextEncode): the CLIP input has no T5-XXL")
    assert "CLIPLoader type 'sd3'" in str(error.value)


def test_a_clip_with_another_width_is_a_node_error(model_and_encoder):
    handle, engine, node = model_and_encoder

    class Wide(T5OnlySD3Clip):
        def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
            return torch.zeros(1, len(tokens["t5xxl"][0]), 4096)

    with pytest.raises(Exception) as error:
        node.execute(handle, PROMPT, "", clip=Wide(engine.tokenizer, engine.text_encoder))
    assert "gives 4096-wide embeddings but this ConsisID model needs 32" in str(error.value)


class _LinearVAE(torch.nn.Module):
    """A VAE stand-in whose latent mean is exactly `mix` @ colour (8x downsampled), to check the fitting method."""

    def __init__(self, mix: torch.Tensor) -> None:
        super().__init__()
        self.mix = mix

    def encode(self, x):  # [1, 3, 1, H, W] in [-1, 1]
        pooled = torch.nn.functional.avg_pool3d(x, (1, 8, 8))
        mean = torch.einsum("cr,brthw->bcthw", self.mix, pooled)
        return SimpleNamespace(latent_dist=SimpleNamespace(parameters=torch.cat([mean, torch.zeros_like(mean)], 1)))


def test_preview_fit_recovers_a_linear_vae_exactly():
    from consisid_core.engine.preview import fit_latent_rgb_map, latent_means

    mix = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    engine = SimpleNamespace(vae=_LinearVAE(mix), placement=SimpleNamespace(use=lambda *m: contextlib.nullcontext()),
                             device=torch.device("cpu"), dtype=torch.float32, info=SimpleNamespace(vae_scaling=0.7))
    rgb_map = fit_latent_rgb_map(engine)
    colours = torch.rand(8, 3, generator=torch.Generator().manual_seed(7)) * 2 - 1  # not used by the fit
    assert rgb_map.residual(latent_means(engine, colours), colours) < 1e-4


def test_preview_on_the_tiny_model(model_and_encoder):
    from consisid_core.engine.preview import fit_colours, fit_latent_rgb_map, latent_means

    _handle, engine, _node = model_and_encoder
    rgb_map = fit_latent_rgb_map(engine)
    assert tuple(rgb_map.weight.shape) == (engine.info.latent_channels, 3)
    colours = fit_colours()
    latents = latent_means(engine, colours)
    assert rgb_map.residual(latents, colours) < float((colours - colours.mean(0)).abs().mean())
    video = latents[:, :, None, None].expand(-1, -1, 4, 6)[None]  # [1, T, C, h, w] of flat frames
    image = rgb_map.to_rgb(video, frame=2)
    assert image.shape == (4, 6, 3) and image.dtype.name == "uint8" and (image == image[0, 0]).all()
    predicted = latents[2] @ rgb_map.weight + rgb_map.bias
    assert torch.allclose(torch.from_numpy(image[0, 0]).float(), ((predicted.clamp(-1, 1) + 1) * 127.5).round(), atol=1)
