"""Values passed between generation stages (and between ComfyUI nodes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TextConditioning:
    """T5 embeddings of the prompt and (for CFG) the negative prompt, padded to the model's text length."""

    prompt_embeds: torch.Tensor
    negative_embeds: torch.Tensor | None
    prompt: str = ""
    negative_prompt: str = ""


@dataclass
class GlobalConditioning:
    """Low-frequency identity: VAE posteriors of the face image (and keypoint image) at one output size.

    Only the posterior parameters are stored; the latent is *sampled* with the sampler's seed, first in
    the random stream, exactly as the reference does.
    """

    image_posterior: torch.Tensor  # [1, 2*C, 1, h, w] mean|logvar, as the VAE encoder returns them
    kps_posterior: torch.Tensor | None
    height: int
    width: int
    face_image: torch.Tensor | None = None  # the preprocessed [-1,1] face image, kept for previews/re-encoding


@dataclass
class LocalConditioning:
    """High-frequency identity: the local facial extractor's face tokens, computed once per generation."""

    face_tokens: torch.Tensor  # [1, num_queries, kv_dim]
    face_scale: float = 1.0


@dataclass
class LatentVideo:
    """Denoised latents [1, T, C, h, w] plus the sizes they decode to."""

    latents: torch.Tensor
    height: int
    width: int
    num_frames: int
