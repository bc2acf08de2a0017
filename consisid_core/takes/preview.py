"""Early-pick previews: the clean latents the sampler predicts at a step, decoded only where the metric looks.

The engine's step callback hands out the noisy latents only, so `CleanPrediction` watches the transformer
(hooks on `patch_embed`, whose input holds the step's latents, and `proj_out`, its last layer) and rebuilds
the scheduler's own x0 = sqrt(a_t) x_t - sqrt(1 - a_t) v with the same guidance; the hooks only read.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from ..engine.denoise import guidance_at
from ..engine.stages import LatentVideo
from ..metrics.protocol import clip_frame_indices, face_frame_indices


class CleanPrediction:
    """Within `watch(engine)`, `latents` becomes the x0 predicted at step `at_step` (1-based; scaled latents)."""

    def __init__(self, engine, steps: int, guidance_scale: float, dynamic_cfg: bool, at_step: int) -> None:
        from diffusers import CogVideoXDPMScheduler

        scheduler = CogVideoXDPMScheduler.from_config(engine.scheduler.config)
        scheduler.set_timesteps(steps)
        self.timesteps = scheduler.timesteps.cpu()
        self.alphas = scheduler.alphas_cumprod
        self.steps, self.guidance, self.dynamic = steps, float(guidance_scale), bool(dynamic_cfg)
        self.channels = engine.info.latent_channels
        self.patch = int(engine.transformer.config.patch_size)
        self.at_step = int(at_step)
        self.step = 0
        self.latents: torch.Tensor | None = None
        self._input: torch.Tensor | None = None

    def _on_input(self, module, args) -> None:
        self._input = args[1][:1, :, : self.channels]  # [latents | image latents], both CFG halves alike

    def _on_output(self, module, args, output) -> None:
        self.step += 1
        if self.step != self.at_step:
            return
        x = self._input
        b, (f, _, h, w) = output.shape[0], x.shape[1:]
        p = self.patch
        v = output.reshape(b, f, h // p, w // p, -1, p, p).permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        v = v.float()
        t = self.timesteps[self.step - 1]
        if b == 2:  # classifier-free guidance, as the loop combines it
            uncond, cond = v.chunk(2)
            v = uncond + guidance_at(self.guidance, self.dynamic, self.steps, t.item()) * (cond - uncond)
        a = self.alphas[int(t)].to(v.device)
        self.latents = (a**0.5 * x.float() - (1 - a) ** 0.5 * v).to(x.dtype)

    @contextlib.contextmanager
    def watch(self, engine) -> Iterator["CleanPrediction"]:
        transformer = engine.transformer
        handles = [transformer.patch_embed.register_forward_pre_hook(self._on_input),
                   transformer.proj_out.register_forward_hook(self._on_output)]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


def preview_latent_frames(num_frames: int, temporal: int) -> list[int]:
    """Latent frames holding the video frames the metrics sample (faces and CLIP), in order."""
    frames = np.union1d(face_frame_indices(num_frames), clip_frame_indices(num_frames))
    return sorted({(int(f) + temporal - 1) // temporal for f in frames})


@torch.inference_mode()
def decode_preview(engine, latents: torch.Tensor, num_frames: int, height: int, width: int) -> tuple[torch.Tensor, float]:
    """Each needed latent frame decoded on its own (one image each, far cheaper than the whole video).

    Returns frames [M, H, W, 3] and the mean gap in video frames between them (to express motion per frame)."""
    picks = preview_latent_frames(num_frames, engine.info.vae_temporal)
    frames = [engine.decode(LatentVideo(latents[:, i : i + 1], height, width, 1))[:1] for i in picks]
    gaps = np.diff([max(0, i * engine.info.vae_temporal) for i in picks])
    return torch.cat(frames), float(gaps.mean()) if len(gaps) else 1.0
