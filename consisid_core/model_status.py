"""Which weight files of the pack are present, missing or truncated, and where each one must go.

Used by `python -m consisid_core check-models`, by `install.py` and by the ComfyUI route
`GET /consisid/models`. Only the standard library: it must run before anything else is installed.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from . import catalog
from .catalog import CatalogFile

FOUND = "found"
MISSING = "missing"
OPTIONAL_MISSING = "optional_missing"
TRUNCATED = "truncated"
SIZE_MISMATCH = "size_mismatch"
NESTED = "nested"

PROBLEM_STATUSES = (MISSING, TRUNCATED, SIZE_MISMATCH, NESTED)
APPROX_TOLERANCE = 0.03  # published sizes like "4.99 GB" are rounded to 3 significant digits
VAE_SCALE = 8  # pixels per latent cell of the CogVideoX VAE

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


# ---------------------------------------------------------------- content checks


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


def _human(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"


def check_file(entry: CatalogFile, disk_path: str, target: str | None = None) -> FileStatus:
    """Compare one file on disk with its catalog entry."""
    status = FileStatus(
        path=entry.path,
        component=entry.component,
        status=FOUND,
        target=target or disk_path,
        expected_size=entry.size,
        size_kind=entry.size_kind,
        required=entry.required,
        source={
            "repo": entry.source.repo,
            "path": entry.source.path,
            "url": entry.source.url,
            "download_url": entry.source.download_url,
        },
        message=entry.note,
    )
    if not os.path.isfile(disk_path):
        status.status = MISSING if entry.required else OPTIONAL_MISSING
        status.message = "missing" + (f" ({entry.note})" if entry.note else "")
        return status
    size = os.path.getsize(disk_path)
    status.size = size
    status.found_at = disk_path
    if size == 0:
        status.status, status.message = TRUNCATED, "empty file (interrupted download?)"
        return status
    broken = _structural_problem(disk_path, size)
    if broken:
        status.status, status.message = TRUNCATED, broken
        return status
    if entry.size is None or entry.size_kind == catalog.SIZE_UNKNOWN:
        return status
    accepted = (entry.size,) + entry.alt_sizes
    if entry.size_kind == catalog.SIZE_EXACT:
        if size in accepted:
            return status
        if size < min(accepted) and not _self_consistent(disk_path):
            status.status = TRUNCATED
            status.message = f"{_human(size)} on disk, {_human(entry.size)} expected (interrupted download?)"
        else:
            status.status = SIZE_MISMATCH
            status.message = f"{size} bytes on disk, {entry.size} expected: not the published file"
        return status
    if abs(size - entry.size) <= APPROX_TOLERANCE * entry.size:
        return status
    if _self_consistent(disk_path):
        status.message = f"complete file, but the published one is about {_human(entry.size)} (another variant?)"
        return status
    status.status = TRUNCATED if size < entry.size else SIZE_MISMATCH
    status.message = f"{_human(size)} on disk, about {_human(entry.size)} expected"
    return status


# ---------------------------------------------------------------- one model folder


def _catalog_entry(path: str, component: str) -> CatalogFile:
    for entry in catalog.ALL_FILES:
        if entry.path == path:
            return entry
    return CatalogFile(path, component)


def _weight_entries(folder: str, weight_set: catalog.WeightSet) -> list[CatalogFile]:
    """The weight files this folder must hold for one component: index + its shards, or the single file."""
    index_rel = f"{weight_set.folder}/{weight_set.index}"
    single_rel = f"{weight_set.folder}/{weight_set.single}"
    index_path = os.path.join(folder, *index_rel.split("/"))
    if os.path.isfile(index_path):
        entries = [_catalog_entry(index_rel, weight_set.folder)]
        try:
            with open(index_path, "rb") as handle:
                shards = sorted(set(json.loads(handle.read()).get("weight_map", {}).values()))
        except (OSError, ValueError, AttributeError):
            shards = []
        if not shards:  # unreadable index: fall back on the published shard names
            return entries + [e for e in catalog.MODEL_FILES if e.weight_set == weight_set.folder and e.path != index_rel]
        return entries + [_catalog_entry(f"{weight_set.folder}/{shard}", weight_set.folder) for shard in shards]
    if os.path.isfile(os.path.join(folder, *single_rel.split("/"))):
        return [_catalog_entry(single_rel, weight_set.folder)]
    return [e for e in catalog.MODEL_FILES if e.weight_set == weight_set.folder]


def _model_entries(folder: str) -> list[CatalogFile]:
    """The catalog for this folder with sharded weights and tokenizer alternatives resolved."""
    entries: list[CatalogFile] = []
    done_sets: set[str] = set()
    groups: dict[str, list[CatalogFile]] = {}
    for entry in catalog.MODEL_FILES:
        if entry.any_of:
            groups.setdefault(entry.any_of, []).append(entry)
    done_groups: set[str] = set()
    for entry in catalog.MODEL_FILES:
        if entry.weight_set:
            if entry.weight_set not in done_sets:
                done_sets.add(entry.weight_set)
                entries.extend(_weight_entries(folder, catalog.WEIGHT_SETS[entry.weight_set]))
            continue
        if entry.any_of:
            if entry.any_of in done_groups:
                continue
            done_groups.add(entry.any_of)
            members = groups[entry.any_of]
            present = [m for m in members if os.path.isfile(os.path.join(folder, *m.path.split("/")))]
            entries.extend(present or [members[0]])
            continue
        entries.append(entry)
    return entries


def _antelopev2_candidates(folder: str, insightface_dirs: Sequence[str]) -> list[str]:
    own = os.path.join(folder, *catalog.ANTELOPEV2_DIR.split("/"))
    return [own] + [os.path.join(d, *catalog.ANTELOPEV2_SUBDIR) for d in insightface_dirs]


def _count_onnx(directory: str) -> int:
    return sum(os.path.isfile(os.path.join(directory, name)) for name in catalog.ANTELOPEV2_FILES)


def _antelopev2_statuses(folder: str, insightface_dirs: Sequence[str]) -> tuple[list[FileStatus], str | None]:
    """Status of the five antelopev2 files, searched in the model folder then in ComfyUI's insightface folders."""
    candidates = _antelopev2_candidates(folder, insightface_dirs)
    preferred = candidates[0]
    complete = [c for c in candidates if _count_onnx(c) == len(catalog.ANTELOPEV2_FILES)]
    if complete:
        chosen, nested_in = complete[0], None
    else:
        nested = [c for c in candidates if _count_onnx(os.path.join(c, "antelopev2")) > 0]
        best = max(candidates, key=_count_onnx)
        if nested and _count_onnx(os.path.join(nested[0], "antelopev2")) > _count_onnx(best):
            chosen, nested_in = nested[0], os.path.join(nested[0], "antelopev2")
        else:
            chosen, nested_in = (best if _count_onnx(best) else preferred), None
    alternatives = " or ".join(c for c in candidates if c != chosen)
    statuses = []
    for entry in catalog.ANTELOPEV2_CATALOG:
        name = entry.name
        if nested_in is not None:
            status = check_file(entry, os.path.join(nested_in, name), target=os.path.join(chosen, name))
            if status.status != MISSING:
                status.status = NESTED
                status.message = (
                    f"found in the nested folder {nested_in}: move the .onnx files up one level into {chosen}"
                )
        else:
            status = check_file(entry, os.path.join(chosen, name))
            if status.status == MISSING and alternatives:
                status.message = f"missing (insightface also looks in {alternatives})"
        statuses.append(status)
    found_dir = chosen if complete or _count_onnx(chosen) else None
    return statuses, found_dir


def native_settings(folder: str) -> dict | None:
    """The width/height/frame count the checkpoint was trained for, from transformer/config.json."""
    try:
        with open(os.path.join(folder, "transformer", "config.json"), "rb") as handle:
            config = json.loads(handle.read())
        return {
            "width": int(config["sample_width"]) * VAE_SCALE,
            "height": int(config["sample_height"]) * VAE_SCALE,
            "num_frames": int(config["sample_frames"]),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


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


# ---------------------------------------------------------------- several folders


_MARKERS = ("model_index.json", "transformer", "vae", "text_encoder", "tokenizer", "scheduler", catalog.FACE_ENCODER_DIR)


def looks_like_model_folder(path: str) -> bool:
    """A folder holding at least one piece of the ConsisID-preview layout."""
    return any(os.path.exists(os.path.join(path, marker)) for marker in _MARKERS)


def list_model_folders(consisid_dirs: Iterable[str]) -> list[str]:
    """Sub-folders of the ConsisID folders that hold (part of) a model, first path wins on equal names."""
    seen: dict[str, str] = {}
    for base in consisid_dirs:
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base), key=str.lower):
            path = os.path.join(base, name)
            if name.startswith(".") or not os.path.isdir(path) or name in seen or not looks_like_model_folder(path):
                continue
            seen[name] = path
    return list(seen.values())


def scan_models(consisid_dirs: Sequence[str], insightface_dirs: Sequence[str] = ()) -> ModelsReport:
    """Check every model folder under the given ConsisID folders; an empty tree reports the default one as missing."""
    consisid_dirs = [os.path.abspath(d) for d in consisid_dirs]
    insightface_dirs = [os.path.abspath(d) for d in insightface_dirs]
    folders = list_model_folders(consisid_dirs)
    hints = [
        f"model files were found directly in {d}: move them into a sub-folder, "
        f"e.g. {os.path.join(d, catalog.DEFAULT_MODEL_NAME)}"
        for d in consisid_dirs
        if os.path.isdir(d) and looks_like_model_folder(d)
    ]
    if not folders and consisid_dirs:
        folders = [os.path.join(consisid_dirs[0], catalog.DEFAULT_MODEL_NAME)]
    models = [check_model_folder(f, insightface_dirs) for f in folders]
    return ModelsReport(consisid_dirs, insightface_dirs, models, hints)


def read_extra_model_paths(yaml_path: str) -> dict[str, list[str]]:
    """Folder lists per key from a ComfyUI extra_model_paths.yaml (same resolution rules as ComfyUI)."""
    import yaml  # pyyaml ships with transformers/huggingface_hub; only needed for this optional file

    with open(yaml_path, "r", encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    yaml_dir = os.path.dirname(os.path.abspath(yaml_path))
    result: dict[str, list[str]] = {}
    for section in config.values():
        if not isinstance(section, dict):
            continue
        section = dict(section)
        base = section.pop("base_path", None)
        section.pop("is_default", None)
        if base:
            base = os.path.expandvars(os.path.expanduser(str(base)))
            if not os.path.isabs(base):
                base = os.path.abspath(os.path.join(yaml_dir, base))
        for key, value in section.items():
            for line in str(value).split("\n"):
                line = line.strip()
                if not line:
                    continue
                path = os.path.join(base, line) if base else line
                if not os.path.isabs(path):
                    path = os.path.join(yaml_dir, path)
                result.setdefault(key, []).append(os.path.normpath(path))
    return result


def scan_models_root(models_dir: str, extra_paths: dict[str, list[str]] | None = None) -> ModelsReport:
    """Check a ComfyUI `models/` folder plus optional extra paths (as read_extra_model_paths returns)."""
    extra_paths = extra_paths or {}
    consisid = [os.path.join(models_dir, catalog.CONSISID_FOLDER_KEY)] + extra_paths.get(catalog.CONSISID_FOLDER_KEY, [])
    insight = [os.path.join(models_dir, catalog.INSIGHTFACE_FOLDER_KEY)] + extra_paths.get(catalog.INSIGHTFACE_FOLDER_KEY, [])
    return scan_models(consisid, insight)


# ---------------------------------------------------------------- text output

_LABELS = {
    FOUND: "ok",
    MISSING: "MISSING",
    OPTIONAL_MISSING: "optional",
    TRUNCATED: "TRUNCATED",
    SIZE_MISMATCH: "WRONG SIZE",
    NESTED: "NESTED",
}


def _expected_text(status: FileStatus) -> str:
    if status.expected_size is None:
        return "-"
    prefix = "~" if status.size_kind == catalog.SIZE_APPROX else ""
    return prefix + _human(status.expected_size)


def format_folder(model: FolderStatus, verbose: bool = False) -> str:
    """A human-readable table for one model folder; problems come with the target path and the download link."""
    if not model.exists:
        head = f"{model.name}: folder not found, expected at {model.path}"
    elif model.problems:
        head = f"{model.name}: {model.problems} problem(s)  ({model.path})"
    else:
        head = f"{model.name}: all files found  ({model.path})"
    lines = [head]
    if model.native:
        n = model.native
        lines.append(f"  native size: {n['width']}x{n['height']}, {n['num_frames']} frames")
    width = max(len(f.path) for f in model.files)
    lines.append(f"  {'STATUS':<10} {'FILE':<{width}} {'ON DISK':>10} {'EXPECTED':>10}")
    for f in model.files:
        if not verbose and f.status == OPTIONAL_MISSING:
            continue
        lines.append(f"  {_LABELS[f.status]:<10} {f.path:<{width}} {_human(f.size):>10} {_expected_text(f):>10}")
        if f.problem:
            if f.status != MISSING and f.message:
                lines.append(f"  {'':<10} ! {f.message}")
            lines.append(f"  {'':<10} -> {f.target}")
            lines.append(f"  {'':<10} <- {f.source.get('download_url', '')}")
    return "\n".join(lines)


def format_report(report: ModelsReport, verbose: bool = False) -> str:
    """The whole check as text: searched folders, then one table per model folder."""
    lines = ["ConsisID model check", "  model folders searched: " + (", ".join(report.consisid_dirs) or "-")]
    if report.insightface_dirs:
        lines.append("  insightface folders searched: " + ", ".join(report.insightface_dirs))
    for hint in report.hints:
        lines.append(f"  hint: {hint}")
    for model in report.models:
        lines.append("")
        lines.append(format_folder(model, verbose))
    lines.append("")
    if report.ok:
        lines.append("Result: ready (every needed file of at least one model folder is in place).")
    else:
        lines.append(
            f"Result: {report.problems} file problem(s). Download the files above into the folders shown "
            f"(repo {catalog.HF_URL}); antelopev2 may also go in models/insightface/models/antelopev2/."
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- where to look by default

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_models_dir() -> str:
    """ComfyUI's models folder when the pack sits in ComfyUI/custom_nodes/, else $COMFYUI_DIR/models, else ./models."""
    custom_nodes = os.path.dirname(PACK_DIR)
    if os.path.basename(custom_nodes) == "custom_nodes":
        return os.path.join(os.path.dirname(custom_nodes), "models")
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if comfy_dir:
        return os.path.join(comfy_dir, "models")
    return os.path.abspath("models")


def report_for_path(path: str | None = None, extra_paths_yaml: str | None = None) -> ModelsReport:
    """Check a ComfyUI models folder, a `models/consisid` folder or a single model folder, whichever `path` is."""
    path = os.path.abspath(path or default_models_dir())
    if extra_paths_yaml is None:
        guess = os.path.join(os.path.dirname(path), "extra_model_paths.yaml")
        extra_paths_yaml = guess if os.path.basename(path) == "models" and os.path.isfile(guess) else None
    extra = read_extra_model_paths(extra_paths_yaml) if extra_paths_yaml else {}
    if os.path.isfile(os.path.join(path, "model_index.json")) or os.path.isdir(os.path.join(path, "transformer")):
        models_root = os.path.dirname(os.path.dirname(path))
        insight = [os.path.join(models_root, catalog.INSIGHTFACE_FOLDER_KEY)] + extra.get(catalog.INSIGHTFACE_FOLDER_KEY, [])
        insight = [d for d in insight if os.path.isdir(d)]
        return ModelsReport([os.path.dirname(path)], insight, [check_model_folder(path, insight)])
    if os.path.basename(path) == catalog.CONSISID_FOLDER_KEY and not os.path.isdir(os.path.join(path, catalog.CONSISID_FOLDER_KEY)):
        models_root = os.path.dirname(path)
        insight = [os.path.join(models_root, catalog.INSIGHTFACE_FOLDER_KEY)] + extra.get(catalog.INSIGHTFACE_FOLDER_KEY, [])
        return scan_models([path] + extra.get(catalog.CONSISID_FOLDER_KEY, []), insight)
    return scan_models_root(path, extra)
