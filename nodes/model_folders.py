"""ConsisID model folders under ComfyUI's `consisid` paths: listing, lookup and what each supports."""

from __future__ import annotations

from pathlib import Path

from consisid_core import catalog, model_folder
from consisid_core.model_info import ModelInfo

from . import comfy_bridge

_INFO_CACHE: dict[tuple[str, float, float], ModelInfo] = {}


def model_names() -> list[str]:
    """Model folders under every `consisid` root, as consisid_core.model_folder lists them (first root wins)."""
    return [p.name for p in model_folder.list_model_folders(comfy_bridge.model_roots())]


def combo_names() -> list[str]:
    """The loader combo: installed folders, or the expected name so a fresh canvas explains what is missing."""
    return model_names() or [catalog.DEFAULT_MODEL_NAME]


def find_model(name: str) -> Path | None:
    """Path of a listed model folder by name, or None."""
    return model_folder.find_model_folder(name, comfy_bridge.model_roots())


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
        info = model_folder.read_model_info(folder)
        if info is None:
            return None
        _INFO_CACHE[key] = info
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


def face_dirs(model: str) -> tuple[Path, list[Path]] | None:
    """(face_encoder/ of a listed model folder, ComfyUI's insightface folders searched for antelopev2), or None."""
    folder = find_model(model)
    if folder is None:
        return None
    return model_folder.face_encoder_dir(folder), comfy_bridge.insightface_roots()
