"""Stand-in for ComfyUI 0.8 `comfy/cli_args.py`: the parsed `args` the pack reads."""

from __future__ import annotations

import argparse
import enum


class LatentPreviewMethod(enum.Enum):
    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"

    @classmethod
    def from_string(cls, value: str):
        for member in cls:
            if member.value == value:
                return member
        return None


args = argparse.Namespace(
    cpu=True,
    preview_method=LatentPreviewMethod.NoPreviews,
    preview_size=512,
    gpu_only=False,
    cpu_vae=False,
    disable_metadata=False,
    base_directory=None,
)
