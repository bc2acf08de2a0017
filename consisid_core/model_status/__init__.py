"""Which weight files of the pack are present, missing or truncated, and where each one must go.

A reporter over consisid_core.model_folder (where things are): file_checks (one file against the catalog),
folders (whole model folders), locations (which folders to check), text (the report as a table) and
deep_check (generate's pre-load check of every file it will read, LoRAs included; whether a file is whole by its
own format is consisid_core.file_formats, which the engine's LoRA check reads too).
Used by `python -m consisid_core check-models`, `install.py` and the ComfyUI route `GET /consisid/models`.
Only the standard library: it must run before anything else is installed.
"""

from __future__ import annotations

from .file_checks import (
    APPROX_TOLERANCE,
    FOUND,
    MISSING,
    NESTED,
    OPTIONAL_MISSING,
    PROBLEM_STATUSES,
    SIZE_MISMATCH,
    TRUNCATED,
    FileStatus,
    check_file,
    human_size,
    safetensors_expected_size,
)
from .folders import LABELS, FolderStatus, ModelsReport, check_model_folder, native_settings, scan_models
from .locations import (
    PACK_DIR,
    default_models_dir,
    locate_models_dir,
    logical_path,
    read_extra_model_paths,
    report_for_path,
    scan_models_root,
)
from .text import format_folder, format_report

__all__ = [
    "APPROX_TOLERANCE", "FOUND", "MISSING", "NESTED", "OPTIONAL_MISSING", "PROBLEM_STATUSES", "SIZE_MISMATCH",
    "TRUNCATED", "FileStatus", "check_file", "human_size", "safetensors_expected_size", "LABELS", "FolderStatus",
    "ModelsReport", "check_model_folder", "native_settings", "scan_models", "PACK_DIR", "default_models_dir",
    "locate_models_dir", "logical_path", "read_extra_model_paths", "report_for_path", "scan_models_root",
    "format_folder", "format_report",
]

from .deep_check import deep_check  # noqa: E402 - after the reporters it builds on

__all__ += ["deep_check"]
