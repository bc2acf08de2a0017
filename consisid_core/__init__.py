"""ConsisID identity-preserving text-to-video, independent of ComfyUI.

Heavy dependencies (torch models, diffusers, insightface) are imported lazily so that importing this
package is cheap and never fails because of an optional component.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConsisIDError, ModelFilesError, UnsupportedInputError

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .engine.engine import ConsisIDEngine


def load_engine(path: Any, device: Any = "cuda", dtype: Any = None, **kwargs: Any) -> "ConsisIDEngine":
    """Load a ConsisID model folder (or a transformer .safetensors file) into a ready engine."""
    from .engine.loading import load_engine as _load_engine

    return _load_engine(path, device=device, dtype=dtype, **kwargs)


__all__ = ["load_engine", "ConsisIDError", "ModelFilesError", "UnsupportedInputError", "__version__"]
