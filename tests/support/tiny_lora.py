"""A random diffusers-format LoRA for a tiny transformer (every block linear), for LoRA tests."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


def write_tiny_lora(transformer: torch.nn.Module, path: str | Path, rank: int = 2, seed: int = 0,
                    scale: float = 0.2) -> Path:
    """`transformer.<layer>.lora_A/lora_B.weight` for every Linear in transformer_blocks (no alpha: alpha = rank)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("transformer_blocks.") and "norm" not in name:
            state[f"transformer.{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=gen) * scale
            state[f"transformer.{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=gen) * scale
    path = Path(path)
    save_file(state, str(path))
    return path
