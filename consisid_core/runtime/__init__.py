"""The runtime layer: where and how models run, below the engine and the face pipeline.

setting.py (RuntimeSetting, resolve_runtime: every choice checked once), devices.py (devices, dtypes, noise
generators), attention.py (backends: which exist, which run here), fp8.py (fp8 weight storage),
compile_blocks.py (torch.compile of transformer blocks), offload.py + offload_groups.py + pinning.py (memory
modes: models kept on the device, moved per stage or streamed layer by layer). It imports nothing above it
(never the engine, face, nodes or CLI); the names below are the ones most callers need.
"""

from __future__ import annotations

from .devices import (DTYPES, NOISE_DEVICES, RuntimeSettingError, generator_device, noise_generator, resolve_device,
                      resolve_dtype)
from .setting import RuntimeSetting, resolve_runtime

__all__ = [
    "RuntimeSetting", "RuntimeSettingError", "resolve_runtime", "resolve_device", "resolve_dtype",
    "noise_generator", "generator_device", "NOISE_DEVICES", "DTYPES",
]
