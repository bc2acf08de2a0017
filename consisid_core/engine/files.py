"""Find every file of a ConsisID model folder, or say exactly which one is missing and where it comes from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .. import model_folder
from ..catalog import HF_REPO, HF_URL
from ..errors import ModelFilesError


@dataclass(frozen=True)
class ComponentFiles:
    """Config and weight files of one model component."""

    config: Path
    weights: tuple[Path, ...]


@dataclass(frozen=True)
class ModelFiles:
    """Resolved files of a whole model (folder layout of BestWishYsh/ConsisID-preview)."""

    root: Path
    transformer: ComponentFiles
    vae: ComponentFiles
    text_encoder: ComponentFiles
    tokenizer_dir: Path
    scheduler_config: Path


def _source(rel: str) -> str:
    return f"{HF_URL}/tree/main/{rel}"


def _missing(path: Path, what: str, rel: str) -> ModelFilesError:
    return ModelFilesError(f"missing {what}: {path} (get it from {_source(rel)})")


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFilesError(f"{what} {path} is unreadable or not JSON ({exc}); re-download it from {HF_URL}") from exc


def find_weights(root: Path, component: str) -> tuple[Path, ...]:
    """Weight files of a component: a single file, or every shard its index json lists (all must exist)."""
    found = model_folder.weight_files(root, component)
    if found.index is not None:
        if found.shards is None:
            _read_json(found.index, "weight index")  # unreadable JSON gets its own message
            raise ModelFilesError(f"weight index {found.index} lists no shard files; re-download it from {_source(component)}")
        absent = [str(s) for s in found.shards if not s.is_file()]
        if absent:
            raise ModelFilesError(
                f"{len(absent)} of {len(found.shards)} weight shards listed in {found.index.name} are missing: "
                + ", ".join(absent) + f" (get them from {_source(component)})"
            )
        return found.shards
    if found.single is not None:
        return (found.single,)
    stem = model_folder.weight_stem(component)
    raise ModelFilesError(
        f"no weights in {found.folder}: expected {stem}.safetensors (or sharded {stem}-0000N-of-0000M.safetensors with "
        f"{stem}.safetensors.index.json); get them from {_source(component)}"
    )


def component_files(root: Path, name: str) -> ComponentFiles:
    """Config + weights of `transformer`, `vae` or `text_encoder` under a model folder."""
    folder = root / name
    if not folder.is_dir():
        raise _missing(folder, f"{name} folder", name)
    config = folder / "config.json"
    if not config.is_file():
        raise _missing(config, f"{name} config", name)
    return ComponentFiles(config=config, weights=find_weights(root, name))


def tokenizer_folder(root: Path) -> Path:
    """The tokenizer folder; it needs a sentencepiece `spiece.model` or a `tokenizer.json`."""
    folder = root / "tokenizer"
    if not folder.is_dir():
        raise _missing(folder, "tokenizer folder", "tokenizer")
    if model_folder.tokenizer_vocab(root) is None:
        raise ModelFilesError(
            f"tokenizer folder {folder} has neither {' nor '.join(model_folder.TOKENIZER_VOCAB)}; "
            f"get them from {_source('tokenizer')}"
        )
    return folder


def resolve_model_folder(path: str | Path) -> ModelFiles:
    """Check a ConsisID model folder and return its files, failing on the first missing piece."""
    root = Path(path).expanduser()
    if not root.exists():
        raise ModelFilesError(
            f"model folder {root} does not exist; download {HF_REPO} ({HF_URL}) into it, "
            "e.g. `python -m consisid_core generate --download`"
        )
    if not root.is_dir():
        raise ModelFilesError(f"{root} is not a folder; give the ConsisID model folder (the one holding model_index.json)")
    if not (root / model_folder.MODEL_INDEX).is_file():
        raise ModelFilesError(
            f"{root} is not a complete ConsisID model folder: model_index.json is missing (expected the layout of "
            f"{HF_REPO}: model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/; see {HF_URL})"
        )
    scheduler = root / model_folder.SCHEDULER_CONFIG
    if not scheduler.is_file():
        raise _missing(scheduler, "scheduler config", "scheduler")
    return ModelFiles(
        root=root,
        transformer=component_files(root, "transformer"),
        vae=component_files(root, "vae"),
        text_encoder=component_files(root, "text_encoder"),
        tokenizer_dir=tokenizer_folder(root),
        scheduler_config=scheduler,
    )


def resolve_single_file(path: str | Path, components_dir: str | Path | None = None) -> ModelFiles:
    """Files for a transformer given as one .safetensors file; other parts come from a model folder.

    The transformer config is `config.json` beside the file, else the model folder's `transformer/config.json`.
    The model folder is `components_dir`, else the nearest folder above the file holding model_index.json.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelFilesError(f"transformer file {file} does not exist")
    if file.suffix != ".safetensors":
        raise ModelFilesError(f"{file} is not a .safetensors file; single-file transformers must be safetensors")
    if components_dir is None:
        components_dir = next((p for p in file.parents if (p / model_folder.MODEL_INDEX).is_file()), None)
        if components_dir is None:
            raise ModelFilesError(
                f"cannot find the VAE, T5 and scheduler for {file.name}: put the file inside a ConsisID model folder "
                f"(one holding model_index.json) or pass the model folder explicitly"
            )
    folder = resolve_model_folder(components_dir)
    config = file.with_name("config.json")
    if not config.is_file():
        config = folder.transformer.config
    return ModelFiles(
        root=folder.root,
        transformer=ComponentFiles(config=config, weights=(file,)),
        vae=folder.vae,
        text_encoder=folder.text_encoder,
        tokenizer_dir=folder.tokenizer_dir,
        scheduler_config=folder.scheduler_config,
    )


def read_config(path: Path) -> dict:
    """A component config as a dict, with a clear error when it is broken."""
    return _read_json(path, "config")
