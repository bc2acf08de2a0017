"""Compiled transformer blocks: each block's forward goes through torch.compile; the loop stays eager.

Only the blocks are compiled (in place, `Module.compile`, so names, weights and hooks stay where they were),
so step caching and the face injections between blocks run as plain Python. Weights moving between stages
(`model_offload`) only trigger a recompile per device; `sequential_offload` moves each layer's weights from
inside its forward, which a compiled block cannot do, so that combination is refused.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import torch
from torch import nn

from ..choices import COMPILE_CHOICES


def compile_choice(value: object) -> str:
    """Accept 'off'/'blocks' and the booleans/None the runtime setting used before ('off' for False/None)."""
    if value is None or value is False:
        return "off"
    if value is True:
        return "blocks"
    return str(value)


def _cpp_compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++", "cl"):
        if name and shutil.which(name):
            return name
    return None


def toolchain_problem(device: torch.device) -> str | None:
    """What torch.compile's default backend lacks on this machine for `device`, or None."""
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "torch.compile on CUDA needs triton (pip install triton; on Windows triton-windows)"
    if device.type == "cpu" and _cpp_compiler() is None:
        return "torch.compile on the CPU needs a C++ compiler (g++ or clang++) on the PATH"
    if device.type not in ("cuda", "cpu"):
        return f"torch.compile is only set up here for CUDA and the CPU, not '{device.type}'"
    return None


def compile_problem(choice: str, device: torch.device, memory_mode: str) -> str | None:
    """Why `compile=choice` cannot run with this device and memory mode (one line with the fix), or None."""
    if choice not in COMPILE_CHOICES:
        return f"compile must be one of {list(COMPILE_CHOICES)}; got {choice!r}"
    if choice == "off":
        return None
    if memory_mode == "sequential_offload":
        return ("compile 'blocks' cannot be combined with memory_mode 'sequential_offload' (it moves each layer's "
                "weights during the forward); use memory_mode 'model_offload' or compile 'off'")
    problem = toolchain_problem(device)
    if problem is not None:
        return f"compile 'blocks' is not available: {problem}; or choose compile 'off'"
    return None


def compile_blocks(transformer: nn.Module, choice: str = "blocks") -> nn.Module:
    """Compile every transformer block in place (first call of each shape compiles, later ones reuse it)."""
    if choice == "blocks":
        for block in transformer.transformer_blocks:
            block.compile()
    return transformer
