"""Safe weight reading and fast model construction (meta device + assign), no accelerate needed."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from ..errors import ModelFilesError


def read_state_dict(files: Iterable[Path], source: str) -> dict[str, torch.Tensor]:
    """Merge the tensors of safetensors files (or .bin via weights_only torch.load) into one dict."""
    state: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            if file.suffix == ".safetensors":
                from safetensors.torch import load_file

                part = load_file(str(file))
            else:
                part = torch.load(str(file), map_location="cpu", weights_only=True)
        except Exception as exc:  # safetensors/pickle raise many types for truncated or foreign files
            raise ModelFilesError(
                f"weight file {file} could not be read ({type(exc).__name__}: {exc}); it is probably truncated or "
                f"not a weight file: re-download it from {source}"
            ) from exc
        if not isinstance(part, dict):
            raise ModelFilesError(f"weight file {file} does not hold a state dict; re-download it from {source}")
        state.update(part)
    return state


def _has_meta_tensors(model: torch.nn.Module) -> bool:
    return any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))


def build_model(cls, config: dict, state: dict[str, torch.Tensor], dtype: torch.dtype, what: str, source: str):
    """Instantiate `cls` from `config` and load `state` exactly, casting everything to `dtype`.

    The model is built on the meta device so no time or memory is spent on random init; if the class
    creates non-persistent buffers the checkpoint does not hold, it is rebuilt normally instead.
    """
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    with torch.device("meta"):
        model = cls.from_config(config)
    expected = set(model.state_dict().keys())
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - expected)
    if missing:
        hint = ""
        if any(k.startswith(("local_facial_extractor", "perceiver_cross_attention")) for k in missing):
            hint = " (the face modules are absent: is this a plain CogVideoX checkpoint rather than ConsisID?)"
        raise ModelFilesError(
            f"{what} weights do not match its config: {len(missing)} tensors missing, e.g. {missing[:3]}{hint}; "
            f"check the file or re-download it from {source}"
        )
    if unexpected:
        raise ModelFilesError(
            f"{what} weights hold {len(unexpected)} tensors its config does not use, e.g. {unexpected[:3]}; "
            f"the config and weights belong to different models (re-download from {source})"
        )
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # shape mismatches
        raise ModelFilesError(
            f"{what} weights do not fit its config ({str(exc).splitlines()[-1].strip()}); "
            f"the config and weights belong to different models (re-download from {source})"
        ) from exc
    if _has_meta_tensors(model):
        model = cls.from_config(config)
        model.load_state_dict(state, strict=True)
    torch.nn.Module.to(model, dtype=dtype)  # plain cast: diffusers' own .to() only adds a noisy warning here
    return model.eval().requires_grad_(False)
