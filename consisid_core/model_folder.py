"""The one resolver of where things are: model folders, their components and face files, antelopev2.

Engine loading (engine/files.py), the face weights (face/weights.py), the model check (model_status/)
and the ComfyUI folder lists (nodes/model_folders.py) all ask this module, so they cannot disagree.
Standard library only: install.py runs the model check before anything else is installed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from . import catalog

MODEL_INDEX = "model_index.json"
SCHEDULER_CONFIG = "scheduler/scheduler_config.json"
COMPONENT_DIRS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler", catalog.FACE_ENCODER_DIR)
WEIGHT_SUFFIXES = (".safetensors", ".bin")  # diffusers/transformers read both; safetensors is what is published
TOKENIZER_VOCAB = tuple(e.name for e in catalog.MODEL_FILES if e.any_of == "tokenizer-vocab")
FACE_ENCODER_FILES = (catalog.RETINAFACE_FILE, catalog.BISENET_FILE, catalog.EVA_CLIP_FILE)
ANTELOPEV2_REQUIRED = catalog.ANTELOPEV2_USED  # the detector and ArcFace: the rest of the pack is not run
ANTELOPEV2_NAME = catalog.ANTELOPEV2_SUBDIR[-1]

PathLike = str | os.PathLike


# ---------------------------------------------------------------- what a model folder is, and where


def is_model_folder(path: PathLike) -> bool:
    """A folder holding at least one piece of the ConsisID-preview layout (the check names what is missing)."""
    folder = Path(path)
    return folder.is_dir() and any((folder / part).exists() for part in (MODEL_INDEX, *COMPONENT_DIRS))


def is_given_model_folder(path: PathLike) -> bool:
    """Whether a path given by hand is one model folder rather than a models/ or consisid/ folder.

    Only pieces a ComfyUI models/ folder never holds count (it has its own vae/): model_index.json, transformer/.
    """
    folder = Path(path)
    return (folder / MODEL_INDEX).is_file() or (folder / "transformer").is_dir()


def list_model_folders(roots: Iterable[PathLike]) -> list[Path]:
    """Model folders directly under the given roots, sorted by name; the first root wins on equal names."""
    found: dict[str, Path] = {}
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir(), key=lambda p: p.name.lower()):
            if child.name.startswith(".") or child.name in found or not is_model_folder(child):
                continue
            found[child.name] = child
    return list(found.values())


def find_model_folder(name: str, roots: Iterable[PathLike]) -> Path | None:
    """The model folder `name` as `list_model_folders` lists it, or None (also for names with a path in them)."""
    if not name or Path(name).name != name or name.startswith("."):
        return None
    return next((p for p in list_model_folders(roots) if p.name == name), None)


def roots_under(models_dir: PathLike, key: str, extra_paths: dict[str, list[str]] | None = None) -> list[Path]:
    """The folders searched for `key` (consisid / insightface) outside ComfyUI: models/<key>, then extra paths."""
    extra = (extra_paths or {}).get(key, [])
    return [Path(p) for p in dict.fromkeys([os.path.join(models_dir, key), *extra])]


def registered_roots(folder_paths, key: str) -> list[Path]:
    """The folders a running ComfyUI searches for `key`: its registered paths, then models/<key> if absent."""
    try:
        paths = list(folder_paths.get_folder_paths(key))
    except Exception:  # key never registered (KeyError), or an unusual folder_paths
        paths = []
    return [Path(p) for p in dict.fromkeys([*paths, os.path.join(folder_paths.models_dir, key)])]


# ---------------------------------------------------------------- components of one model folder


def weight_stem(component: str) -> str:
    """File name stem of a component's weights ('diffusion_pytorch_model' or 'model')."""
    return catalog.WEIGHT_SETS[component].single.rsplit(".", 1)[0]


def read_shard_names(index: Path) -> list[str] | None:
    """Shard file names an index json maps weights to (sorted, unique); None when it cannot be read."""
    try:
        data = json.loads(index.read_bytes())
        return sorted(set(data["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class WeightFiles:
    """Where a component's weights are: an index plus its shards, one single file, or nothing (all None/empty)."""

    folder: Path
    index: Path | None = None
    shards: tuple[Path, ...] | None = None  # None: the index is unreadable or names no shard
    single: Path | None = None

    @property
    def present(self) -> bool:
        return self.index is not None or self.single is not None


def weight_files(root: PathLike, component: str) -> WeightFiles:
    """The weight layout of `transformer`, `vae` or `text_encoder`: an index json wins over a single file."""
    folder = Path(root) / component
    stem = weight_stem(component)
    for suffix in WEIGHT_SUFFIXES:
        index = folder / f"{stem}{suffix}.index.json"
        if index.is_file():
            names = read_shard_names(index)
            return WeightFiles(folder, index=index, shards=tuple(folder / n for n in names) if names else None)
        single = folder / f"{stem}{suffix}"
        if single.is_file():
            return WeightFiles(folder, single=single)
    return WeightFiles(folder)


def tokenizer_vocab(root: PathLike) -> Path | None:
    """The tokenizer's vocabulary file (spiece.model or tokenizer.json), or None."""
    folder = Path(root) / "tokenizer"
    return next((folder / n for n in TOKENIZER_VOCAB if (folder / n).is_file()), None)


def read_model_info(root: PathLike):
    """ModelInfo (native sizes and switches) from the folder's transformer and VAE configs, None if unreadable."""
    from .model_info import ModelInfo

    try:
        configs = [json.loads((Path(root) / c / "config.json").read_bytes()) for c in ("transformer", "vae")]
        return ModelInfo.from_configs(*configs)
    except (OSError, ValueError, TypeError, AttributeError):
        return None


# ---------------------------------------------------------------- face files and antelopev2


def face_encoder_dir(path: PathLike) -> Path:
    """`face_encoder/` of a model folder; a path that already is that folder is returned as it is."""
    path = Path(path).expanduser()
    nested = path / catalog.FACE_ENCODER_DIR
    return nested if path.name != catalog.FACE_ENCODER_DIR and nested.is_dir() else path


def antelopev2_candidates(
    face_dir: PathLike, insightface_dirs: Sequence[PathLike] = (), explicit: PathLike | None = None
) -> list[Path]:
    """Folders that may hold the antelopev2 .onnx files, in search order.

    An explicit folder comes first (as given, or its antelopev2/ or models/antelopev2/ when it is
    ComfyUI's models/ or insightface/ folder), then the model's face_encoder/models/antelopev2, then
    models/antelopev2 of each of ComfyUI's insightface folders.
    """
    candidates = []
    if explicit is not None:
        root = Path(explicit).expanduser()
        candidates.append(root)
        if root.name != ANTELOPEV2_NAME:  # ...antelopev2/antelopev2 is the nested-unzip mistake, reported instead
            candidates += [root / ANTELOPEV2_NAME, root.joinpath(*catalog.ANTELOPEV2_SUBDIR)]
    candidates.append(Path(face_dir).joinpath(*catalog.ANTELOPEV2_SUBDIR))
    candidates += [Path(d).expanduser().joinpath(*catalog.ANTELOPEV2_SUBDIR) for d in insightface_dirs]
    return list(dict.fromkeys(candidates))


def _holds(folder: Path, names: Sequence[str]) -> int:
    return sum((folder / n).is_file() for n in names)


@dataclass(frozen=True)
class Antelopev2Location:
    """The outcome of the antelopev2 search: the folder to load, or what was found instead."""

    candidates: tuple[Path, ...]
    directory: Path | None  # first candidate holding every file ConsisID runs
    nested: Path | None  # else: a candidate whose antelopev2/ sub-folder holds the files (the unzip mistake)
    partial: Path | None  # else: the first candidate holding some of the files

    @property
    def target(self) -> Path:
        """Where the files are (or belong): the complete, nested, partial or first folder searched."""
        return self.directory or self.nested or self.partial or self.candidates[0]


def locate_antelopev2(
    face_dir: PathLike, insightface_dirs: Sequence[PathLike] = (), explicit: PathLike | None = None
) -> Antelopev2Location:
    """Search the candidates in order (see `antelopev2_candidates`)."""
    candidates = antelopev2_candidates(face_dir, insightface_dirs, explicit)
    directory = next((c for c in candidates if _holds(c, ANTELOPEV2_REQUIRED) == len(ANTELOPEV2_REQUIRED)), None)
    nested = partial = None
    if directory is None:
        nested = next(
            (c for c in candidates if c.name == ANTELOPEV2_NAME and _holds(c / ANTELOPEV2_NAME, catalog.ANTELOPEV2_FILES)),
            None,
        )
        partial = next((c for c in candidates if _holds(c, catalog.ANTELOPEV2_FILES)), None)
    return Antelopev2Location(tuple(candidates), directory, nested, partial)
