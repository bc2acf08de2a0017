"""The model check as text: one table per model folder, with where each missing file goes and comes from."""

from __future__ import annotations

from .. import catalog
from .file_checks import MISSING, OPTIONAL_MISSING, FileStatus, human_size
from .folders import LABELS, FolderStatus, ModelsReport


def _expected_text(status: FileStatus) -> str:
    if status.expected_size is None:
        return "-"
    prefix = "~" if status.size_kind == catalog.SIZE_APPROX else ""
    return prefix + human_size(status.expected_size)


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
        lines.append(f"  {LABELS[f.status]:<10} {f.path:<{width}} {human_size(f.size):>10} {_expected_text(f):>10}")
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
