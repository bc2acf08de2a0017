"""Load only the parts of a ConsisID model folder that a training job needs (never the whole engine)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..catalog import HF_URL
from ..engine.files import ModelFiles, read_config, resolve_model_folder
from ..model_info import ModelInfo
from ..engine.weights import build_model, read_state_dict


def model_files(path: str | Path) -> ModelFiles:
    return resolve_model_folder(Path(path).expanduser())


def model_info(files: ModelFiles) -> ModelInfo:
    return ModelInfo.from_configs(read_config(files.transformer.config), read_config(files.vae.config))


def load_vae(files: ModelFiles, dtype: torch.dtype = torch.float32):
    from diffusers import AutoencoderKLCogVideoX

    source = f"{HF_URL}/tree/main/vae"
    return build_model(AutoencoderKLCogVideoX, read_config(files.vae.config), read_state_dict(files.vae.weights, source),
                       dtype, "VAE", source)


def load_transformer(files: ModelFiles, dtype: torch.dtype = torch.float32):
    from diffusers import ConsisIDTransformer3DModel

    source = f"{HF_URL}/tree/main/transformer"
    return build_model(ConsisIDTransformer3DModel, read_config(files.transformer.config),
                       read_state_dict(files.transformer.weights, source), dtype, "transformer", source)


def load_text(files: ModelFiles, dtype: torch.dtype = torch.float32):
    """(tokenizer, T5 encoder), loaded as the engine loads them."""
    from ..engine import loading

    return loading._load_tokenizer(files), loading._load_text_encoder(files, dtype)


def load_scheduler(files: ModelFiles):
    from diffusers import CogVideoXDPMScheduler

    return CogVideoXDPMScheduler.from_config(read_config(files.scheduler_config))
