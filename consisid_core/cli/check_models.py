"""`check-models`: list every weight file the pack needs, found or missing, with target folder and source."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .. import model_status
from ..errors import ConsisIDError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `consisid check-models`."""
    parser.add_argument(
        "--models-dir",
        default=None,
        help="ComfyUI's models folder, a models/consisid folder or one model folder "
        "(default: the ComfyUI this pack is installed in, else $COMFYUI_DIR/models, else ./models)",
    )
    parser.add_argument("--extra-model-paths", default=None,
                        help="a ComfyUI extra_model_paths.yaml to search as well (default: the one beside "
                             "--models-dir when that is a folder named models, else none)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON, for scripts (default: a table)")
    parser.add_argument("--verbose", action="store_true",
                        help="also list optional files that are absent (default: only needed files)")


def check_models_dir(path: str | None) -> None:
    """Refuse a --models-dir that is a file (a folder that does not exist is reported as not found)."""
    if path and os.path.exists(path) and not os.path.isdir(path):
        raise ConsisIDError(f"--models-dir {path} is a file, not a folder; give ComfyUI's models folder, a "
                            "models/consisid folder or one ConsisID model folder")


def run(args: argparse.Namespace) -> int:
    """Print the report; exit code 0 when a complete model folder exists, 1 otherwise."""
    check_models_dir(args.models_dir)
    report = model_status.report_for_path(args.models_dir, args.extra_model_paths)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(model_status.format_report(report, verbose=args.verbose))
    return 0 if report.ok else 1
