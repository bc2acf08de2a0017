"""Command-line entry: dispatches to one module per sub-command, each with `add_arguments` and `run`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from ..errors import ConsisIDError

# sub-command -> (module under consisid_core.cli, one-line help)
COMMANDS = {
    "generate": ("generate", "make a video from a face photo and a prompt"),
    "check-models": ("check_models", "list the weight files the pack needs, found or missing"),
    "batch": ("batch", "run many faces x prompts through a ComfyUI server (API mode)"),
    "evaluate": ("evaluate", "identity scores of videos vs face photos (FaceSim-Arc/Cur, CLIPScore, FID, motion)"),
    "prepare-data": ("prepare_data", "turn a folder of clips of one person into a training dataset"),
    "train": ("train", "fine-tune ConsisID on a prepared dataset (LoRA or full)"),
    "demo-model": ("demo_model", "write a random-weight model folder to try every command without the 25 GB weights"),
}
MODULE_PROG = "python -m consisid_core"


def program_name(argv0: str | None = None) -> str:
    """How the user started us: `consisid` (the console command), `python -m consisid_core`, or `consisid`."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    name = os.path.basename(argv0 or "")
    if name in ("__main__.py", "-m", "-c", "") or os.path.basename(os.path.dirname(argv0 or "")) == "consisid_core":
        return MODULE_PROG
    stem = name[:-4] if name.lower().endswith(".exe") else name
    stem = stem[:-len("-script.py")] if stem.endswith("-script.py") else stem
    return stem if stem.startswith("consisid") else "consisid"


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (not the whole usage block) and exits with 2."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(chosen: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """Top-level parser; only the chosen sub-command's module is imported (one broken command can't break all)."""
    parser = _OneLineParser(prog=prog or program_name(), description="ConsisID identity-preserving text-to-video")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(f"{__name__}.{module_name}")
            module.add_arguments(sub)
            sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run a sub-command; known errors become a one-line message and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(chosen if chosen in COMMANDS else None).parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except ConsisIDError as exc:
        from .output import report_refusal  # one line, rank 0 only under torchrun

        report_refusal(exc)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
