"""`--validate`: a short video from a held-out face every N steps, with the weights being trained."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class ValidationSetup:
    """What each validation video is made from (computed once, before training)."""

    face_image: np.ndarray  # 512x512x3 uint8, the aligned face on white
    id_cond: torch.Tensor
    id_vit_hidden: list[torch.Tensor]
    face_kps: np.ndarray | None
    prompt_embeds: torch.Tensor
    negative_embeds: torch.Tensor
    steps: int = 20
    guidance: float = 6.0
    seed: int = 42


def setup_from_files(model_path: str | Path, face: str | Path, prompt: str, steps: int = 20) -> ValidationSetup:
    """Identity of a held-out face photo and T5 embeddings of a prompt (the face models and T5 are freed after)."""
    from ..face import extract_identity, load_face_models
    from ..engine.text import encode_prompt
    from .components import load_text, model_files, model_info

    files = model_files(model_path)
    info = model_info(files)
    faces = load_face_models(Path(model_path) / "face_encoder")
    identity = extract_identity(faces, face)
    del faces
    tokenizer, text_encoder = load_text(files)
    with torch.inference_mode():
        positive = encode_prompt(tokenizer, text_encoder, prompt, info.text_len, torch.device("cpu"), torch.float32)
        negative = encode_prompt(tokenizer, text_encoder, "", info.text_len, torch.device("cpu"), torch.float32)
    return ValidationSetup(identity.face_image, identity.id_cond, identity.id_vit_hidden, identity.face_kps,
                           positive, negative, steps=steps)


def render(transformer, vae, scheduler, info, setup: ValidationSetup, out: Path) -> Path:
    """One video with the current weights, through the engine's own stages; written as an mp4."""
    from ..engine.engine import ConsisIDEngine
    from ..runtime.offload import Placement
    from ..video import write_mp4

    device = next(transformer.parameters()).device
    dtype = next(vae.parameters()).dtype
    engine = ConsisIDEngine(transformer=transformer, vae=vae, text_encoder=None, tokenizer=None, scheduler=scheduler,
                            info=info, placement=Placement(device, "none"), dtype=dtype)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    was_training = transformer.training
    transformer.eval()
    try:
        with autocast:
            text = engine.text_from_embeddings(setup.prompt_embeds, setup.negative_embeds)
            global_cond = engine.encode_global(setup.face_image, setup.face_kps if info.is_kps else None)
            local = engine.encode_local(setup.id_cond, setup.id_vit_hidden)
            video = engine.denoise(text, global_cond, local, info.native_frames, setup.steps, setup.guidance,
                                   seed=setup.seed)
            frames = engine.decode(video)
    finally:
        transformer.train(was_training)
    return write_mp4(frames, out)
