"""Is one weight file on disk the published one: present, complete (by its own format) and of the right size."""

from __future__ import annotations

import json
import os
import struct
import zipfile
from dataclasses import dataclass, field

from .. import catalog
from ..catalog import CatalogFile

FOUND = "found"
MISSING = "missing"
OPTIONAL_MISSING = "optional_missing"
TRUNCATED = "truncated"
SIZE_MISMATCH = "size_mismatch"
NESTED = "nested"

PROBLEM_STATUSES = (MISSING, TRUNCATED, SIZE_MISMATCH, NESTED)
APPROX_TOLERANCE = 0.03  # published sizes like "4.99 GB" are rounded to 3 significant digits

_MAX_SAFETENSORS_HEADER = 100_000_000


@dataclass
class FileStatus:
    """The state of one needed file: where it is (or must go), its size and what is wrong with it."""

    path: str
    component: str
    status: str
    target: str
    size: int | None = None
    expected_size: int | None = None
    size_kind: str = catalog.SIZE_UNKNOWN
    required: bool = True
    found_at: str | None = None
    message: str = ""
    source: dict = field(default_factory=dict)

    @property
    def problem(self) -> bool:
        return self.status in PROBLEM_STATUSES


def safetensors_expected_size(path: str) -> int | None:
    """The byte size a .safetensors file must have according to its own header (None: header unreadable)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(8)
            if len(raw) < 8:
                return None
            (header_len,) = struct.unpack("<Q", raw)
            if header_len == 0 or header_len > _MAX_SAFETENSORS_HEADER:
                return None
            header_bytes = handle.read(header_len)
            if len(header_bytes) < header_len:
                return None
            header = json.loads(header_bytes)
    except (OSError, ValueError):
        return None
    end = 0
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        offsets = info.get("data_offsets")
        if isinstance(offsets, list) and len(offsets) == 2:
            end = max(end, int(offsets[1]))
    return 8 + header_len + end


def _structural_problem(path: str, size: int) -> str | None:
    """A reason the file is incomplete judged from its own content, or None when it looks whole (or cannot tell)."""
    lower = path.lower()
    if lower.endswith(".json"):
        try:
            with open(path, "rb") as handle:
                json.loads(handle.read())
        except (OSError, ValueError):
            return "not valid JSON (interrupted download?)"
        return None
    if lower.endswith(".safetensors"):
        expected = safetensors_expected_size(path)
        if expected is None:
            return "safetensors header is unreadable (interrupted download?)"
        if size < expected:
            return f"{size} of {expected} bytes present according to its header (interrupted download)"
        return None
    if lower.endswith((".pt", ".pth", ".bin")):
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic == b"PK\x03\x04":  # torch's zip format: the central directory sits at the very end
            try:
                with zipfile.ZipFile(path) as archive:
                    archive.namelist()
            except (zipfile.BadZipFile, OSError, ValueError):
                return "zip container is cut short (interrupted download)"
    return None


def _self_consistent(path: str) -> bool:
    """True when the file format proves the file complete (safetensors header matches the size, zip end record)."""
    lower = path.lower()
    if lower.endswith(".safetensors"):
        expected = safetensors_expected_size(path)
        return expected is not None and os.path.getsize(path) == expected
    if lower.endswith((".pt", ".pth", ".bin")):
        with open(path, "rb") as handle:
            if handle.read(4) != b"PK\x03\x04":
                return False
        return _structural_problem(path, os.path.getsize(path)) is None
    return False


def human_size(size: int | None) -> str:
    """'4.99 GB', '856.46 MB', '12 B' or '-'."""
    if size is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"


def _new_status(entry: CatalogFile, target: str) -> FileStatus:
    source = {"repo": entry.source.repo, "path": entry.source.path, "url": entry.source.url,
              "download_url": entry.source.download_url}
    return FileStatus(path=entry.path, component=entry.component, status=FOUND, target=target,
                      expected_size=entry.size, size_kind=entry.size_kind, required=entry.required,
                      source=source, message=entry.note)


def _size_verdict(entry: CatalogFile, disk_path: str, size: int) -> tuple[str, str] | None:
    """(status, message) when the size says the file is not the published one, else None."""
    if entry.size is None or entry.size_kind == catalog.SIZE_UNKNOWN:
        return None
    accepted = (entry.size,) + entry.alt_sizes
    if entry.size_kind == catalog.SIZE_EXACT:
        if size in accepted:
            return None
        if size < min(accepted) and not _self_consistent(disk_path):
            return TRUNCATED, f"{human_size(size)} on disk, {human_size(entry.size)} expected (interrupted download?)"
        return SIZE_MISMATCH, f"{size} bytes on disk, {entry.size} expected: not the published file"
    if abs(size - entry.size) <= APPROX_TOLERANCE * entry.size:
        return None
    if _self_consistent(disk_path):
        return FOUND, f"complete file, but the published one is about {human_size(entry.size)} (another variant?)"
    return (TRUNCATED if size < entry.size else SIZE_MISMATCH), f"{human_size(size)} on disk, about {human_size(entry.size)} expected"


def check_file(entry: CatalogFile, disk_path: str, target: str | None = None) -> FileStatus:
    """Compare one file on disk with its catalog entry."""
    status = _new_status(entry, target or disk_path)
    if not os.path.isfile(disk_path):
        status.status = MISSING if entry.required else OPTIONAL_MISSING
        status.message = "missing" + (f" ({entry.note})" if entry.note else "")
        return status
    size = os.path.getsize(disk_path)
    status.size, status.found_at = size, disk_path
    broken = "empty file (interrupted download?)" if size == 0 else _structural_problem(disk_path, size)
    verdict = (TRUNCATED, broken) if broken else _size_verdict(entry, disk_path, size)
    if verdict is not None:
        status.status, status.message = verdict
    return status
