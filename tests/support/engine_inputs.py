"""Inputs and the reference runner shared by the engine tests."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

PROMPT = "a young woman smiles and walks in the city street at night"


def face_image(seed: int = 0, size: int = 64) -> Image.Image:
    """A deterministic RGB stand-in for the 512x512 aligned face (content is irrelevant to equivalence)."""
    rng = np.random.RandomState(seed)
    return Image.fromarray((rng.rand(size, size, 3) * 255).astype("uint8"))


def identity(id_dim: int = 528, vit_dim: int = 16, tokens: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    id_cond = torch.randn(1, id_dim, generator=gen)
    hidden = [torch.randn(1, tokens, vit_dim, generator=gen) for _ in range(5)]
    return id_cond, hidden


def reference_frames(folder, *, seed: int, **kwargs) -> torch.Tensor:
    """diffusers.ConsisIDPipeline on the same folder, frames as [F, H, W, C] float32."""
    from diffusers import ConsisIDPipeline

    pipe = ConsisIDPipeline.from_pretrained(str(folder), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    text_len = pipe.transformer.config.max_text_seq_length
    out = pipe(generator=torch.Generator("cpu").manual_seed(seed), output_type="pt",
               max_sequence_length=text_len, **kwargs)
    return out.frames[0].permute(0, 2, 3, 1).float()
