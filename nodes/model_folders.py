"""ConsisID model folders under ComfyUI's `consisid` paths: listing, lookup and what each supports."""

from __future__ import annotations

import json
from pathlib import Path

from consisid_core import catalog
from consisid_core.engine.info import ModelInfo

from . import comfy_bridge

_INFO_CACHE: dict[tuple[str, float, float], ModelInfo] = {}


def looks_like_model_folder(path: Path) -> bool:
    """A ConsisID-preview-style folder: model_index.json or a transformer/ config."""
    return (path / "model_index.json").is_file() or (path / "transformer" / "config.json").is_file()


def model_names() -> list[str]:
    """Sub-folders of every `consisid` root that look like model folders (first root wins on equal names)."""
    names: list[str] = []
    for root in comfy_bridge.model_roots():
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir(), key=lambda p: p.name.lower()):
            if child.is_dir() and looks_like_model_folder(child) and child.name not in names:
                names.append(child.name)
    return names


def combo_names() -> list[str]:
    """The loader combo: installed folders, or the expected name so a fresh canvas explains what is missing."""
    return model_names() or [catalog.DEFAULT_MODEL_NAME]


def find_model(name: str) -> Path | None:
    """Path of a model folder by name (the first root holding it), or None."""
    if not name or Path(name).name != name:
        return None
    for root in comfy_bridge.model_roots():
        candidate = root / name
        if candidate.is_dir():
            return candidate
    return None


def where_to_put(name: str) -> str:
    roots = comfy_bridge.model_roots()
    return str(roots[-1] / (name or catalog.DEFAULT_MODEL_NAME))


def missing_folder_message(name: str) -> str:
    searched = ", ".join(str(r) for r in comfy_bridge.model_roots())
    return (
        f"model folder '{name}' was not found (searched: {searched}). Download {catalog.HF_REPO} "
        f"({catalog.HF_URL}) into {where_to_put(name)} so that it holds model_index.json, transformer/, vae/, "
        "text_encoder/, tokenizer/, scheduler/ and face_encoder/; run `python -m consisid_core check-models` "
        "to see which files are missing."
    )


def model_info(folder: Path) -> ModelInfo | None:
    """Native size and switches of an installed checkpoint, read from its configs (None if unreadable)."""
    t_config, v_config = folder / "transformer" / "config.json", folder / "vae" / "config.json"
    try:
        key = (str(folder), t_config.stat().st_mtime, v_config.stat().st_mtime)
    except OSError:
        return None
    if key not in _INFO_CACHE:
        try:
            _INFO_CACHE[key] = ModelInfo.from_configs(
                json.loads(t_config.read_text(encoding="utf-8")), json.loads(v_config.read_text(encoding="utf-8"))
            )
        except (OSError, ValueError):
            return None
    return _INFO_CACHE[key]


def installed_infos() -> dict[str, ModelInfo]:
    """ModelInfo of every installed model folder whose configs can be read."""
    infos = {}
    for name in model_names():
        folder = find_model(name)
        info = model_info(folder) if folder is not None else None
        if info is not None:
            infos[name] = info
    return infos


def antelopev2_dir(face_encoder_dir: Path) -> Path | None:
    """Where to take antelopev2 from: None when the model's face_encoder has it, else ComfyUI's insightface folder."""
    from consisid_core.face.weights import ANTELOPEV2_REQUIRED

    own = face_encoder_dir.joinpath(*catalog.ANTELOPEV2_SUBDIR)
    if all((own / f).is_file() for f in ANTELOPEV2_REQUIRED):
        return None
    candidates = [root.joinpath(*catalog.ANTELOPEV2_SUBDIR) for root in comfy_bridge.insightface_roots()]
    for candidate in candidates:
        if all((candidate / f).is_file() for f in ANTELOPEV2_REQUIRED) or (candidate / "antelopev2").is_dir():
            return candidate
    return candidates[-1] if candidates else None
