"""Safe weight reading and frugal model construction: a skeleton without weights, filled tensor by tensor.

`build_model` streams each tensor from disk straight into the model, cast on the way, so host RAM peaks at
about the loaded model's size plus one tensor (never a whole state dict next to the model); tensors already
in the wanted dtype are zero-copy views of the mapped file.
"""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import torch

from ..errors import ModelFilesError

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}


def _unreadable(file: Path, exc: Exception, source: str) -> ModelFilesError:
    return ModelFilesError(
        f"weight file {file} could not be read ({type(exc).__name__}: {exc}); it is probably truncated or "
        f"not a weight file: re-download it from {source}"
    )


def _safetensors_header(handle, file: Path) -> tuple[dict, int]:
    size = struct.unpack("<Q", handle.read(8))[0]
    if size > 100_000_000:
        raise ValueError(f"header of {size} bytes")
    header = json.loads(handle.read(size))
    header.pop("__metadata__", None)
    return header, 8 + size


def _iter_safetensors(file: Path, source: str, dtype: torch.dtype | None) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) one at a time. A tensor kept as stored is a zero-copy view of a private mapping of the
    file (read from disk only when used). One to be cast to `dtype` is read into a reused scratch buffer and
    is valid only until the next one is yielded: the caller casts it at once, so only the cast copy stays."""
    try:
        handle = open(file, "rb")
        size = file.stat().st_size
    except OSError as exc:
        raise _unreadable(file, exc, source) from exc
    mapped, scratch = None, torch.empty(0, dtype=torch.uint8)
    with handle:
        try:
            header, start = _safetensors_header(handle, file)
            entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
        except (ValueError, KeyError, struct.error, TypeError) as exc:
            raise _unreadable(file, exc, source) from exc
        for name, entry in entries:
            try:
                stored = _ST_DTYPES[entry["dtype"]]
                begin, end = (start + o for o in entry["data_offsets"])
                if end > size:
                    raise ValueError(f"tensor {name} ends past the end of the file")
                keep = dtype is None or not stored.is_floating_point or stored == dtype
                if keep and begin % stored.itemsize == 0:
                    if mapped is None:
                        storage = torch.UntypedStorage.from_file(str(file), shared=False, nbytes=size)
                        mapped = torch.empty(0, dtype=torch.uint8).set_(storage)
                    tensor = mapped[begin:end].view(stored).view(entry["shape"])
                else:
                    if keep:
                        raw = torch.empty(end - begin, dtype=torch.uint8)
                    else:
                        if scratch.numel() < end - begin:
                            scratch = torch.empty(end - begin, dtype=torch.uint8)
                        raw = scratch[: end - begin]
                    handle.seek(begin)
                    if end > begin:
                        handle.readinto(memoryview(raw.numpy()))
                    tensor = raw.view(stored).view(entry["shape"])
            except (KeyError, ValueError, RuntimeError, TypeError, OSError) as exc:
                raise _unreadable(file, exc, source) from exc
            yield name, tensor


def _iter_pickle(file: Path, source: str) -> Iterator[tuple[str, torch.Tensor]]:
    try:
        part = torch.load(str(file), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # pickle raises many types for truncated or foreign files
        raise _unreadable(file, exc, source) from exc
    if not isinstance(part, dict):
        raise ModelFilesError(f"weight file {file} does not hold a state dict; re-download it from {source}")
    for name in list(part):
        yield name, part.pop(name)


def iter_tensors(files: Iterable[Path], source: str, dtype: torch.dtype | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Every (name, tensor) of the weight files, one at a time (safetensors, or .bin via weights_only load);
    `dtype`: the floating dtype they will be cast to (tensors already in it are not copied)."""
    for file in files:
        file = Path(file)
        yield from (_iter_safetensors(file, source, dtype) if file.suffix == ".safetensors"
                    else _iter_pickle(file, source))


def read_state_dict(files: Iterable[Path], source: str) -> dict[str, torch.Tensor]:
    """Merge the tensors of the weight files into one dict (small models; big ones go through build_model)."""
    return dict(iter_tensors(files, source))


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Inside, new modules register their parameters on the meta device (no memory, no random init);
    buffers stay real, so ones computed in __init__ (position tables) need no checkpoint entry."""
    register = torch.nn.Module.register_parameter

    def on_meta(module, name, param):
        if param is not None and not param.is_meta:
            param = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    torch.nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register


def _slots(model: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, str, bool]]:
    """state-dict key -> (owning module, attribute name, is_parameter), as load_state_dict would fill them."""
    slots = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        dot = f"{prefix}." if prefix else ""
        for name, param in module._parameters.items():
            if param is not None:
                slots.setdefault(dot + name, (module, name, True))
        for name, buf in module._buffers.items():
            if buf is not None and name not in module._non_persistent_buffers_set:
                slots.setdefault(dot + name, (module, name, False))
    return slots


def _mismatch(what: str, missing: list[str], unexpected: list[str], source: str) -> ModelFilesError:
    if missing:
        hint = ""
        if any(k.startswith(("local_facial_extractor", "perceiver_cross_attention")) for k in missing):
            hint = " (the face modules are absent: is this a plain CogVideoX checkpoint rather than ConsisID?)"
        return ModelFilesError(
            f"{what} weights do not match its config: {len(missing)} tensors missing, e.g. {missing[:3]}{hint}; "
            f"check the file or re-download it from {source}"
        )
    return ModelFilesError(
        f"{what} weights hold {len(unexpected)} tensors its config does not use, e.g. {unexpected[:3]}; "
        f"the config and weights belong to different models (re-download from {source})"
    )


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return tensor.to(dtype) if tensor.is_floating_point() and tensor.dtype != dtype else tensor


def build_model(cls, config: dict, weights: Mapping[str, torch.Tensor] | Iterable[Path], dtype: torch.dtype,
                what: str, source: str):
    """Instantiate `cls` from `config` without allocating weights, then fill it exactly from `weights`.

    `weights` is a state dict or the weight files (streamed tensor by tensor); floating tensors are cast
    to `dtype` one at a time. Missing, unused or mis-shaped tensors raise ModelFilesError.
    """
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    with _parameters_on_meta():
        model = cls.from_config(config)
    slots = _slots(model)
    tensors = weights.items() if isinstance(weights, Mapping) else iter_tensors(weights, source, dtype)
    unexpected, filled = [], set()
    with torch.no_grad():
        for key, tensor in tensors:
            slot = slots.get(key)
            if slot is None:
                unexpected.append(key)
                continue
            module, name, is_param = slot
            current = module._parameters[name] if is_param else module._buffers[name]
            if tuple(current.shape) != tuple(tensor.shape):
                raise ModelFilesError(
                    f"{what} weights do not fit its config (size mismatch for {key}: the file has "
                    f"{tuple(tensor.shape)}, the config needs {tuple(current.shape)}); the config and weights "
                    f"belong to different models (re-download from {source})"
                )
            tensor = _cast(tensor, dtype)
            if is_param:
                module._parameters[name] = torch.nn.Parameter(tensor, requires_grad=False)
            else:
                module._buffers[name] = tensor
            filled.add(key)
    missing = sorted(set(slots) - filled)
    if missing or unexpected:
        raise _mismatch(what, missing, sorted(unexpected), source)
    for module in model.modules():  # buffers computed in __init__ (not in the file)
        for name, buf in module._buffers.items():
            if buf is not None:
                module._buffers[name] = _cast(buf, dtype)
    return model.eval().requires_grad_(False)
