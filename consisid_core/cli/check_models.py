"""`check-models`: list every weight file the pack needs, found or missing, with target folder and source."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .. import model_status
from ..errors import ConsisIDError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `python -m consisid_core check-models`."""
    parser.add_argument(
        "--models-dir",
        default=None,
        help="ComfyUI's models folder, a models/consisid folder or one model folder "
        "(default: the ComfyUI this pack is installed in, else $COMFYUI_DIR/models, else ./models)",
    )
    parser.add_argument("--extra-model-paths", default=None, help="a ComfyUI extra_model_paths.yaml to search as well")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (for scripts)")
    parser.add_argument("--verbose", action="store_true", help="also list optional files that are absent")


def run(args: argparse.Namespace) -> int:
    """Print the report; exit code 0 when a complete model folder exists, 1 otherwise."""
    if args.extra_model_paths is not None:
        check_extra_paths_file(args.extra_model_paths)
    report = model_status.report_for_path(args.models_dir, args.extra_model_paths)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(model_status.format_report(report, verbose=args.verbose))
    return 0 if report.ok else 1


def check_extra_paths_file(path: str) -> None:
    """One clear line when --extra-model-paths is missing, unreadable, not YAML or not ComfyUI's layout."""
    import yaml

    where = f"--extra-model-paths {path}"
    if not os.path.isfile(path):
        raise ConsisIDError(f"{where}: {'is a folder' if os.path.isdir(path) else 'no such file'}; give ComfyUI's "
                            "extra_model_paths.yaml (or leave the option out)")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except UnicodeDecodeError as exc:
        raise ConsisIDError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConsisIDError(f"{where}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" on line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConsisIDError(f"{where}: not valid YAML{line} ({problem}); fix it like ComfyUI's "
                            "extra_model_paths.yaml.example") from None
    if data is not None and (not isinstance(data, dict) or not all(isinstance(v, (dict, type(None))) for v in data.values())):
        raise ConsisIDError(f"{where}: expected sections of `key: folder` lines (e.g. `comfyui:` with `base_path:` "
                            "and `consisid: models/consisid/`), like ComfyUI's extra_model_paths.yaml.example")
