"""Is a weight file whole by its own format: safetensors header and offsets, ONNX/protobuf framing, torch zip.

Reads only headers and framing (seeks past tensor data), so a folder of multi-GB files is judged in seconds.
Standard library only. Each `*_problem` function returns None for a sound file, else one short reason.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile

MAX_SAFETENSORS_HEADER = 100_000_000
# bytes per element of each safetensors dtype (sub-byte float types are left unchecked)
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}


class FormatError(ValueError):
    """The file is not a sound file of its format (the message says how)."""


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict, int]:
    """(header dict, header byte length) of a .safetensors file; FormatError when the header cannot be read."""
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) < 8:
            raise FormatError("shorter than the 8-byte safetensors header length")
        (length,) = struct.unpack("<Q", raw)
        if length == 0 or length > MAX_SAFETENSORS_HEADER:
            raise FormatError(f"header length {length} is impossible (not a safetensors file?)")
        data = handle.read(length)
    if len(data) < length:
        raise FormatError(f"the header is cut short ({len(data)} of {length} bytes)")
    try:
        header = json.loads(data)
    except ValueError:
        raise FormatError("the header is not JSON (not a safetensors file?)") from None
    if not isinstance(header, dict):
        raise FormatError("the header is not a JSON object")
    return header, length


def safetensors_shapes(header: dict) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a header (the `__metadata__` entry left out)."""
    return {k: tuple(v.get("shape") or ()) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """None when header, tensor offsets and file size agree (the rules safetensors itself applies), else why not."""
    try:
        header, length = read_safetensors_header(path)
        size = os.path.getsize(path)
    except FormatError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        shape = info.get("shape") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) and o >= 0 for o in offsets)
                or offsets[1] < offsets[0] or not isinstance(shape, list)
                or not all(isinstance(d, int) and d >= 0 for d in shape)):
            return f"tensor {name!r} has a malformed header entry"
        width = _DTYPE_BYTES.get(str(info.get("dtype")))
        count = 1
        for dim in shape:
            count *= dim
        if width is not None and offsets[1] - offsets[0] != count * width:
            return f"tensor {name!r} takes {offsets[1] - offsets[0]} bytes, its shape and dtype need {count * width}"
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            return f"tensor {name!r} does not start where the previous one ends (corrupt header)"
        end = stop
    expected = 8 + length + end
    if size < expected:
        return f"{size} of {expected} bytes present according to its header (interrupted download?)"
    if size > expected:
        return f"{size - expected} bytes more than its header describes (corrupt file)"
    return None


def _varint(handle) -> int | None:
    """A protobuf varint from the file; None at a clean end of file; FormatError when cut inside it."""
    shift = result = 0
    while True:
        byte = handle.read(1)
        if not byte:
            if shift:
                raise FormatError("cut short inside a field")
            return None
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
        if shift > 63:
            raise FormatError("not protobuf data (varint too long)")


def protobuf_fields(path: str | os.PathLike) -> set[int]:
    """Field numbers of the top-level protobuf message in a file, walking its framing to the very end.

    Length-delimited fields are skipped with a seek; FormatError when a field runs past the end of the file.
    """
    size = os.path.getsize(path)
    seen: set[int] = set()
    with open(path, "rb") as handle:
        while True:
            key = _varint(handle)
            if key is None:
                return seen
            number, wire = key >> 3, key & 7
            if number == 0 or wire in (3, 4, 6, 7):
                raise FormatError(f"not protobuf data (bad field key at byte {handle.tell() - 1})")
            if wire == 0:
                if _varint(handle) is None:
                    raise FormatError("cut short inside a field")
            else:
                skip = {1: 8, 5: 4}.get(wire)
                if skip is None:  # wire 2: length-delimited
                    skip = _varint(handle)
                    if skip is None:
                        raise FormatError("cut short inside a field")
                if handle.tell() + skip > size:
                    raise FormatError(f"a field runs {handle.tell() + skip - size} bytes past the end of the file "
                                      "(interrupted download?)")
                handle.seek(skip, os.SEEK_CUR)
            seen.add(number)


_ONNX_GRAPH_FIELD = 7  # ModelProto.graph


def onnx_problem(path: str | os.PathLike) -> str | None:
    """None when the file is a whole ONNX model with a graph (what onnxruntime needs), else why not."""
    try:
        fields = protobuf_fields(path)
    except FormatError as exc:
        return f"not a whole ONNX model: {exc}"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if _ONNX_GRAPH_FIELD not in fields:
        return "not an ONNX model: it holds no graph (interrupted download or a different file?)"
    return None


def protobuf_problem(path: str | os.PathLike) -> str | None:
    """None when the file is whole protobuf data (a sentencepiece spiece.model), else why not."""
    try:
        protobuf_fields(path)
    except FormatError as exc:
        return f"not a whole sentencepiece model: {exc}"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None


def torch_checkpoint_problem(path: str | os.PathLike) -> str | None:
    """None for a whole torch.save zip or a legacy pickle checkpoint, else why not (cut zip, HTML page...)."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic == b"PK\x03\x04":
            with zipfile.ZipFile(path) as archive:
                archive.namelist()
            return None
    except (zipfile.BadZipFile, ValueError):
        return "zip container is cut short (interrupted download?)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if magic[:1] == b"\x80":  # pickle protocol 2+: the legacy torch.save format
        return None
    return "not a PyTorch checkpoint (neither torch's zip format nor a pickle; an HTML page saved by mistake?)"


def json_problem(path: str | os.PathLike) -> str | None:
    """None when the file is JSON, else why not."""
    try:
        with open(path, "rb") as handle:
            json.loads(handle.read())
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except ValueError:
        return "not valid JSON (interrupted download?)"
    return None


def format_problem(path: str | os.PathLike) -> str | None:
    """Why a file is not whole by its own format (chosen by its suffix), or None; an empty file always fails."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes; interrupted download?)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    lower = os.fspath(path).lower()
    for suffix, check in ((".safetensors", safetensors_problem), (".onnx", onnx_problem), (".json", json_problem),
                          (".model", protobuf_problem), (".pt", torch_checkpoint_problem),
                          (".pth", torch_checkpoint_problem), (".bin", torch_checkpoint_problem)):
        if lower.endswith(suffix):
            return check(path)
    return None
