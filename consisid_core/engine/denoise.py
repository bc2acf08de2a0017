"""The ConsisID denoising loop: CogVideoX DPM++ (SDE, 2M) with v-prediction and classifier-free guidance."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import torch

from .transformer_forward import TokenSharding, transformer_forward

if TYPE_CHECKING:  # pragma: no cover
    from .teacache import TeaCache

StepCallback = Callable[[int, int, torch.Tensor], None]


def guidance_at(guidance_scale: float, dynamic: bool, steps: int, timestep_value: float) -> float:
    """CFG weight of one step; the dynamic schedule uses the timestep value, as the reference does."""
    if not dynamic:
        return guidance_scale
    return 1 + guidance_scale * ((1 - math.cos(math.pi * ((steps - timestep_value) / steps) ** 5.0)) / 2)


def denoise_loop(
    transformer,
    scheduler,
    latents: torch.Tensor,
    image_latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    rotary,
    tokens: torch.Tensor | None,
    face_scale: float,
    steps: int,
    guidance_scale: float,
    dynamic_cfg: bool,
    generator: torch.Generator | None,
    callback: StepCallback | None = None,
    cache: "TeaCache | None" = None,
    parallel: TokenSharding | None = None,
) -> torch.Tensor:
    """Run all steps; `prompt_embeds` holds [negative; positive] when CFG is on (guidance_scale > 1).

    `cache` (a TeaCache) may skip the block loop of some steps; its `stats` tell which after the run."""
    do_cfg = guidance_scale > 1.0
    timesteps = scheduler.timesteps
    timesteps_cpu = timesteps.cpu()
    cond_input = torch.cat([image_latents] * 2) if do_cfg else image_latents
    old_x0 = None
    run = cache.start(len(timesteps)) if cache is not None else None  # this generation's own cache state
    for i, t in enumerate(timesteps):
        model_input = torch.cat([latents] * 2) if do_cfg else latents
        model_input = scheduler.scale_model_input(model_input, t)
        model_input = torch.cat([model_input, cond_input], dim=2)
        noise_pred = transformer_forward(
            transformer, model_input, prompt_embeds, t.expand(model_input.shape[0]), rotary, tokens, face_scale, run,
            parallel,
        ).float()
        if do_cfg:
            weight = guidance_at(guidance_scale, dynamic_cfg, steps, timesteps_cpu[i].item())
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + weight * (cond - uncond)
        latents, old_x0 = scheduler.step(
            noise_pred, old_x0, t, timesteps[i - 1] if i > 0 else None, latents, eta=0.0, generator=generator,
            return_dict=False,
        )
        latents = latents.to(prompt_embeds.dtype)
        if callback is not None:
            callback(i + 1, len(timesteps), latents)
    return latents
