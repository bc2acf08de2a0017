"""The dataset folder: dataset.json (settings), manifest.jsonl (one line per clip, ok or skipped), cache files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConsisIDError

MANIFEST = "manifest.jsonl"
SETTINGS = "dataset.json"
EMPTY_PROMPT = "empty_prompt.safetensors"
FORMAT = 1


class DatasetError(ConsisIDError):
    """A dataset folder that cannot be used as it is."""


def read_manifest(folder: Path) -> list[dict]:
    """Entries of manifest.jsonl; a line cut by an interruption (the last one) is ignored."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def append_entry(folder: Path, entry: dict) -> None:
    """Append one line and flush it to disk, so an interrupted run keeps every finished clip."""
    with open(Path(folder) / MANIFEST, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def check_settings(folder: Path, settings: dict) -> None:
    """Write dataset.json, or check that an existing one was made with the same settings (resume)."""
    path = Path(folder) / SETTINGS
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if changed:
            detail = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise DatasetError(
                f"{folder} was prepared with other settings ({detail}); use a new --out folder, or the same settings "
                "to resume"
            )
        return
    path.write_text(json.dumps({"format": FORMAT, **settings}, indent=2, sort_keys=True), encoding="utf-8")


def read_settings(folder: Path) -> dict:
    path = Path(folder) / SETTINGS
    if not path.is_file():
        raise DatasetError(f"{folder} is not a prepared dataset (no {SETTINGS}); run `python -m consisid_core prepare-data` first")
    return json.loads(path.read_text(encoding="utf-8"))


def usable(folder: Path) -> list[dict]:
    """The manifest's ok entries whose cache file exists (latest entry per clip wins)."""
    latest: dict[str, dict] = {}
    for entry in read_manifest(folder):
        latest[entry["id"]] = entry
    return [e for e in latest.values() if e.get("status") == "ok" and (Path(folder) / e["file"]).is_file()]
