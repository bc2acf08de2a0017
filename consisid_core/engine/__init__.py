"""The ConsisID video engine: model loading, conditioning stages, denoising and decoding.

The names below are imported on first use, so `consisid_core.engine.files` imports without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConsisIDEngine": ".engine",
    "GlobalConditioning": ".stages",
    "LatentVideo": ".stages",
    "LocalConditioning": ".stages",
    "TextConditioning": ".stages",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
