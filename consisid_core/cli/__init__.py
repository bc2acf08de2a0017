"""Command-line entry: dispatches to one module per sub-command, each with `add_arguments` and `run`."""

from __future__ import annotations

import argparse
import importlib
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
}


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (not the whole usage block) and exits with 2."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """Top-level parser; only the chosen sub-command's module is imported (one broken command can't break all)."""
    parser = _OneLineParser(prog="python -m consisid_core", description="ConsisID identity-preserving text-to-video")
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
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
