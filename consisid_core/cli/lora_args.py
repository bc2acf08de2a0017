"""`--lora FILE[:STRENGTH]` (repeatable) for the commands that generate."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import validate
from ..errors import UnsupportedInputError


def parse_lora(value: str) -> tuple[Path, float]:
    """'file.safetensors' or 'file.safetensors:0.8' -> (path, strength); a Windows drive colon is part of the path."""
    path, strength = value, 1.0
    head, sep, tail = value.rpartition(":")
    if sep and head:
        try:
            strength = float(tail)
            path = head
        except ValueError:
            pass
    return Path(path).expanduser(), strength


def add_lora_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH]",
                        help="apply a LoRA (diffusers .safetensors, e.g. a train run's pytorch_lora_weights.safetensors) "
                             "at STRENGTH (-4 to 4, default 1); repeat to stack several")


def check_lora_files(values: list[str]) -> list[tuple[Path, float]]:
    """Parse every --lora and check the files exist and the strengths are finite and in range, before any model
    is loaded."""
    specs = [parse_lora(v) for v in values or []]
    for path, strength in specs:
        validate.check_lora_strength(strength, f"--lora {path}:")
        if not path.is_file():
            raise UnsupportedInputError(f"--lora {path}: no such file (give a .safetensors LoRA, optionally FILE:STRENGTH)")
        if path.suffix != ".safetensors":
            raise UnsupportedInputError(f"--lora {path}: only .safetensors LoRA files are read")
    return specs


def apply_loras(engine, specs: list[tuple[Path, float]]) -> None:
    for i, (path, strength) in enumerate(specs):
        name = engine.load_lora(path, strength, name=f"lora{i}_{path.stem}")
        print(f"LoRA {name}: {path} at strength {strength:g}", flush=True)
