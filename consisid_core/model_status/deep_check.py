"""The pre-load file check of `generate`: every file the loaders will read must be whole by its own format.

Catches in seconds what would otherwise fail after minutes of loading: 0-byte or cut ONNX files, truncated
or invalid safetensors, broken JSON, torch checkpoints that are HTML pages, and LoRA files whose keys or shapes
cannot fit the transformer. Missing files are left to the resolvers (engine.files, face.weights), which name them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from .. import catalog, model_folder
from ..file_formats import format_problem
from .folders import _model_entries


def _model_problems(folder: Path, antelopev2_dir: str | os.PathLike | None) -> list[str]:
    problems = []
    for entry in _model_entries(str(folder)):
        path = folder.joinpath(*entry.path.split("/"))
        problem = format_problem(path) if path.is_file() else None
        if problem:
            problems.append(f"{path}: {problem}; re-download it from {entry.source.download_url}")
    found = model_folder.locate_antelopev2(folder / catalog.FACE_ENCODER_DIR, (), antelopev2_dir)
    where = found.directory or found.partial
    for name in model_folder.ANTELOPEV2_REQUIRED if where is not None else ():
        path = where / name
        problem = format_problem(path) if path.is_file() else None
        if problem:
            problems.append(f"{path}: {problem}; re-download antelopev2 ({catalog.INSIGHTFACE_ANTELOPEV2_URL})")
    return problems


def _lora_problems(folder: Path, lora_files: Iterable[str | os.PathLike]) -> list[str]:
    lora_files = [Path(p).expanduser() for p in lora_files]
    if not lora_files:
        return []
    try:
        config = json.loads((folder / "transformer" / "config.json").read_bytes())
    except (OSError, ValueError):
        config = None  # the model check reports the config; the LoRAs can still be checked as files
    from ..engine.lora import lora_file_problem  # torch and diffusers: only when there is a LoRA to check

    problems = []
    for path in lora_files:
        if not path.is_file():
            problems.append(f"LoRA file {path} does not exist")
        elif config is None:
            problem = format_problem(path)
            if problem:
                problems.append(f"LoRA file {path}: {problem}")
        else:
            problem = lora_file_problem(path, config)
            if problem:
                problems.append(problem)
    return problems


def deep_check(model_dir: str | os.PathLike, lora_files: Iterable[str | os.PathLike] = (),
               antelopev2_dir: str | os.PathLike | None = None) -> list[str]:
    """One line per file the loaders would fail on (existing files only), LoRA fit included; [] when all is sound.

    Reads headers and framing only, so it runs in seconds on the full 25 GB model.
    """
    folder = Path(model_dir).expanduser()
    problems = _model_problems(folder, antelopev2_dir) if folder.is_dir() else []
    return problems + _lora_problems(folder, lora_files)
