"""Safe loading of official .pth/.pt weight files: `torch.load(weights_only=True)`, memory-mapped when possible."""

from __future__ import annotations

import os
import pickle
import zipfile

import torch

from ..errors import ModelFilesError


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict (optionally wrapped in 'model'/'module'/'state_dict') without running pickled code."""
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        else:  # legacy (pre-1.6) format cannot be memory-mapped
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelFilesError(
            f"Refusing to load {path}: it is not a plain weights file (it contains pickled code or objects, "
            f"which weights_only=True rejects). Re-download the official file. Detail: {str(exc).splitlines()[0]}"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ModelFilesError(f"Cannot read the weight file {path} ({exc}); it may be truncated: re-download it.") from exc
    for key in ("model", "module", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelFilesError(f"{path} does not contain a state dict of tensors; re-download the official file.")
    return obj


def with_bn_counters(state: dict, net: torch.nn.Module) -> dict:
    """Older files lack BatchNorm `num_batches_tracked` (unused in eval): fill in zeros."""
    missing = [k for k in net.state_dict() if k.endswith("num_batches_tracked") and k not in state]
    return {**{k: torch.zeros((), dtype=torch.long) for k in missing}, **state}


def build_from_state(factory, state: dict, device: torch.device | str) -> torch.nn.Module:
    """Instantiate `factory()` without random init (meta device) and take the file's tensors, in float32."""
    with torch.device("meta"):
        net = factory()
    net.load_state_dict(with_bn_counters(state, net), strict=True, assign=True)
    return net.eval().to(device=device, dtype=torch.float32)
