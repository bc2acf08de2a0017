"""The tiny random-weight model `generate --random-weights` runs: every file in the official layout.

video_models writes the DiT/VAE/T5/scheduler folder, face_models the face_encoder/ (full-size RetinaFace,
BiSeNet, EVA-CLIP with random weights) and face_onnx the tiny antelopev2 stand-ins. The tests build their
tiny models with the same code; test-only extras live in tests/support/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def build_demo_model(folder: str | Path, check: Callable[[Path], None] | None = None) -> Path:
    """Tiny DiT/VAE/T5 with the real face-feature sizes + full-size random face networks; returns the model folder.

    `check(model)` runs once the video model's configs exist, before the slow face networks are built.
    """
    from .face_models import face_models_for_default_photo
    from .video_models import TinySpec, write_tiny_model

    model = write_tiny_model(folder, TinySpec.real_face_dims(height=256, width=384, frames=17, text_len=226))
    if check is not None:
        check(model)
    face_models_for_default_photo(model, eva="full")
    return model
