"""One training batch from cached samples: the recipe's draws turned into model inputs, target and masks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from ..engine.conditioning import keypoint_image, sample_posterior
from ..model_info import ModelInfo
from .dataset import identity_tensors, reference
from .recipe import SampleDraws, TrainConfig, draw, sample_generator


@dataclass
class Batch:
    model_input: torch.Tensor  # [B, T, 2C, h, w]: noisy latents | face-image latents
    noisy: torch.Tensor  # [B, T, C, h, w]
    clean: torch.Tensor  # [B, T, C, h, w] (the target)
    prompt_embeds: torch.Tensor  # [B, L, D]
    timesteps: torch.Tensor  # [B] long
    id_cond: torch.Tensor  # [B, id_dim]
    id_vit_hidden: list[torch.Tensor]  # scales x [B, tokens, width]
    masks: list[torch.Tensor | None]  # per sample [T, h, w] or None (plain mean)
    draws: list[SampleDraws]
    refs: list[str]  # "inside" / "outside" per sample


def _encode_image(vae, processor, image: Image.Image, info: ModelInfo, sigma: float, generator, device, dtype):
    """Noise the conditioning image with sigma (as the reference, before VAE encoding), encode, sample -> [1, 1, C, h, w]."""
    pixels = processor.preprocess(image, height=info.native_height, width=info.native_width).to(device, torch.float32)
    noise = torch.randn(pixels.shape, generator=generator).to(device)
    pixels = (pixels + noise * sigma).to(dtype)
    with torch.no_grad():
        params = vae.encode(pixels.unsqueeze(2)).latent_dist.parameters
    latent = sample_posterior(params, generator) * info.vae_scaling
    return latent.permute(0, 2, 1, 3, 4)


def sample_inputs(sample: dict, config: TrainConfig, info: ModelInfo, vae, processor, scheduler, empty_prompt,
                  device, dtype):
    """Everything one sample contributes to a batch, drawn from the sample's own generator (seed, position)."""
    gen = sample_generator(config.seed, 0, sample["position"])
    draws = draw(config, gen, scheduler.config.num_train_timesteps)
    tensors = sample["tensors"]
    clean = sample_posterior(tensors["latents"].to(device), gen) * info.vae_scaling  # [1, C, T, h, w]
    clean = clean.permute(0, 2, 1, 3, 4).float()
    ref, where = reference(sample, draws.cross_face, gen)
    id_cond, hidden, face, face_kps = identity_tensors(sample, ref)
    face_image = Image.fromarray(face.numpy())
    parts = [_encode_image(vae, processor, face_image, info, draws.image_sigma, gen, device, dtype)]
    if info.is_kps:
        kps_image = keypoint_image(face_image, face_kps)
        parts.append(_encode_image(vae, processor, kps_image, info, draws.image_sigma, gen, device, dtype))
    image_latents = torch.cat(parts, dim=1).float()
    padding = image_latents.new_zeros((1, clean.shape[1] - image_latents.shape[1], *clean.shape[2:]))
    image_latents = torch.cat([image_latents, padding], dim=1)
    if draws.drop_image:
        image_latents = torch.zeros_like(image_latents)
    noise = torch.randn(clean.shape, generator=gen).to(device)
    timestep = torch.tensor([draws.timestep], dtype=torch.long, device=device)
    noisy = scheduler.add_noise(clean, noise, timestep)
    prompt = empty_prompt if draws.drop_text else tensors["prompt_embeds"]
    mask = tensors["mask"].to(device) if draws.use_mask else None
    return dict(clean=clean, noisy=noisy, image=image_latents, prompt=prompt.to(device), timestep=timestep,
                id_cond=id_cond.to(device), hidden=[h.to(device) for h in hidden], mask=mask, draws=draws, ref=where)


def make_batch(samples: list[dict], config: TrainConfig, info: ModelInfo, vae, processor, scheduler, empty_prompt,
               device, dtype=torch.float32) -> Batch:
    parts = [sample_inputs(s, config, info, vae, processor, scheduler, empty_prompt, device, dtype) for s in samples]
    noisy = torch.cat([p["noisy"] for p in parts])
    return Batch(
        model_input=torch.cat([noisy, torch.cat([p["image"] for p in parts])], dim=2),
        noisy=noisy,
        clean=torch.cat([p["clean"] for p in parts]),
        prompt_embeds=torch.cat([p["prompt"] for p in parts]),
        timesteps=torch.cat([p["timestep"] for p in parts]),
        id_cond=torch.cat([p["id_cond"] for p in parts]),
        id_vit_hidden=[torch.cat([p["hidden"][j] for p in parts]) for j in range(len(parts[0]["hidden"]))],
        masks=[p["mask"] for p in parts],
        draws=[p["draws"] for p in parts],
        refs=[p["ref"] for p in parts],
    )
