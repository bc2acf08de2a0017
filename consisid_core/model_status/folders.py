"""The check of whole model folders: every catalog file of each folder, antelopev2 where the loader finds it."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from .. import catalog, model_folder
from ..catalog import CatalogFile
from .file_checks import FOUND, MISSING, NESTED, OPTIONAL_MISSING, SIZE_MISMATCH, TRUNCATED, FileStatus, check_file

LABELS = {  # the words the CLI table and the canvas badge show for each status
    FOUND: "ok",
    MISSING: "MISSING",
    OPTIONAL_MISSING: "optional",
    TRUNCATED: "TRUNCATED",
    SIZE_MISMATCH: "WRONG SIZE",
    NESTED: "NESTED",
}


@dataclass
class FolderStatus:
    """The state of one model folder (`models/consisid/<name>/`)."""

    name: str
    path: str
    exists: bool
    files: list[FileStatus]
    native: dict | None = None
    antelopev2_dir: str | None = None

    @property
    def problems(self) -> int:
        return sum(1 for f in self.files if f.problem)

    @property
    def ok(self) -> bool:
        return self.exists and self.problems == 0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["problems"] = self.problems
        data["ok"] = self.ok
        for entry, status in zip(data["files"], self.files):
            entry["problem"] = status.problem
            entry["label"] = LABELS[status.status]
        return data


@dataclass
class ModelsReport:
    """Every model folder found under the searched ConsisID folders."""

    consisid_dirs: list[str]
    insightface_dirs: list[str]
    models: list[FolderStatus]
    hints: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.models) and any(m.ok for m in self.models)

    @property
    def problems(self) -> int:
        return sum(m.problems for m in self.models)

    def to_dict(self) -> dict:
        return {
            "consisid_dirs": self.consisid_dirs,
            "insightface_dirs": self.insightface_dirs,
            "ok": self.ok,
            "problems": self.problems,
            "hints": self.hints,
            "models": [m.to_dict() for m in self.models],
        }


def _entry(path: str, component: str) -> CatalogFile:
    """The catalog entry of a file by its path in the folder; an unlisted file (other shard names) has no size."""
    return next((e for e in catalog.ALL_FILES if e.path == path), None) or CatalogFile(path, component)


def _weight_entries(folder: str, component: str) -> list[CatalogFile]:
    """The weight files the loader will read for one component, as catalog entries to check."""
    published = [e for e in catalog.MODEL_FILES if e.weight_set == component]
    found = model_folder.weight_files(folder, component)
    rel = lambda p: Path(p).relative_to(folder).as_posix()  # noqa: E731
    if found.index is not None:
        index = _entry(rel(found.index), component)
        if found.shards is None:  # unreadable index: the published shard names are what it should list
            return [index] + [e for e in published if e.path != index.path]
        return [index] + [_entry(rel(s), component) for s in found.shards]
    if found.single is not None:
        return [_entry(rel(found.single), component)]
    return published


def _model_entries(folder: str) -> list[CatalogFile]:
    """The catalog for this folder with its weight layout and tokenizer vocabulary resolved."""
    entries: list[CatalogFile] = []
    done: set[str] = set()
    for entry in catalog.MODEL_FILES:
        group = entry.weight_set or entry.any_of
        if group is None:
            entries.append(entry)
        elif group not in done:
            done.add(group)
            if entry.weight_set:
                entries.extend(_weight_entries(folder, entry.weight_set))
            else:  # alternatives (tokenizer vocabulary): the one present, else the first
                vocab = model_folder.tokenizer_vocab(folder)
                entries.append(entry if vocab is None else _entry(Path(vocab).relative_to(folder).as_posix(), entry.component))
    return entries


def _antelopev2_statuses(folder: str, insightface_dirs: Sequence[str]) -> tuple[list[FileStatus], str | None]:
    """The five antelopev2 files where the face loader looks (model folder, then ComfyUI's insightface folders).

    Always under <model>/face_encoder/, present or not: face_encoder_dir() falls back to the model folder itself
    when face_encoder/ is absent, which would point a fresh install at <model>/models/antelopev2/, a folder the
    loader stops reading as soon as face_encoder/ exists.
    """
    found = model_folder.locate_antelopev2(Path(folder) / catalog.FACE_ENCODER_DIR, insightface_dirs)
    chosen = found.target
    others = " or ".join(str(c) for c in found.candidates if c != chosen)
    statuses = []
    for entry in catalog.ANTELOPEV2_CATALOG:
        if found.nested is not None:
            status = check_file(entry, str(chosen / model_folder.ANTELOPEV2_NAME / entry.name), target=str(chosen / entry.name))
            if status.status != MISSING:
                status.status = NESTED
                status.message = (f"found in the nested folder {chosen / model_folder.ANTELOPEV2_NAME}: "
                                  f"move the .onnx files up one level into {chosen}")
        else:
            status = check_file(entry, str(chosen / entry.name))
            if status.status == MISSING and others:
                status.message = f"missing (insightface also looks in {others})"
        statuses.append(status)
    return statuses, None if found.directory is None else str(found.directory)


def native_settings(folder: str) -> dict | None:
    """The width/height/frame count the checkpoint was trained for (from ModelInfo), or None."""
    info = model_folder.read_model_info(folder)
    if info is None:
        return None
    return {"width": info.native_width, "height": info.native_height, "num_frames": info.native_frames}


def check_model_folder(folder: str, insightface_dirs: Sequence[str] = ()) -> FolderStatus:
    """Check one ConsisID model folder (ConsisID-preview layout) against the catalog."""
    folder = os.path.abspath(folder)
    exists = os.path.isdir(folder)
    files = [check_file(entry, os.path.join(folder, *entry.path.split("/"))) for entry in _model_entries(folder)]
    antelope, antelope_dir = _antelopev2_statuses(folder, [os.path.abspath(d) for d in insightface_dirs])
    return FolderStatus(
        name=os.path.basename(folder.rstrip(os.sep)),
        path=folder,
        exists=exists,
        files=files + antelope,
        native=native_settings(folder) if exists else None,
        antelopev2_dir=antelope_dir,
    )


def scan_models(consisid_dirs: Sequence[str], insightface_dirs: Sequence[str] = ()) -> ModelsReport:
    """Check every model folder under the given ConsisID folders; an empty tree reports the default one as missing."""
    consisid_dirs = [os.path.abspath(d) for d in consisid_dirs]
    insightface_dirs = [os.path.abspath(d) for d in insightface_dirs]
    folders = [str(p) for p in model_folder.list_model_folders(consisid_dirs)]
    hints = [
        f"model files were found directly in {d}: move them into a sub-folder, "
        f"e.g. {os.path.join(d, catalog.DEFAULT_MODEL_NAME)}"
        for d in consisid_dirs
        if model_folder.is_model_folder(d)
    ]
    if not folders and consisid_dirs:
        folders = [os.path.join(consisid_dirs[0], catalog.DEFAULT_MODEL_NAME)]
    models = [check_model_folder(f, insightface_dirs) for f in folders]
    return ModelsReport(consisid_dirs, insightface_dirs, models, hints)
