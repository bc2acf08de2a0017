"""ConsisID identity-preserving text-to-video, independent of ComfyUI.

Heavy dependencies (torch models, diffusers, insightface) are imported lazily so that importing this
package is cheap and never fails because of an optional component.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import ConsisIDError, ModelFilesError, UnsupportedInputError

# onnxruntime (>= 1.29 on Linux/macOS) keeps a device id, caches usage events and looks up its telemetry host
# unless this is set before its first session; the face detector runs on it. A value the user set is kept.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .engine.engine import ConsisIDEngine
    from .engine.teacache import TeaCache


def load_engine(path: Any, device: Any = "auto", dtype: Any = "auto", **kwargs: Any) -> "ConsisIDEngine":
    """Load a ConsisID model folder (or a transformer .safetensors file) into a ready engine."""
    from .engine.loading import load_engine as _load_engine

    return _load_engine(path, device=device, dtype=dtype, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "TeaCache":  # step caching for engine.generate(..., cache=TeaCache(0.15)); imported on first use
        from .engine.teacache import TeaCache

        return TeaCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["load_engine", "TeaCache", "ConsisIDError", "ModelFilesError", "UnsupportedInputError", "__version__"]
