"""The shipped API workflows, set to the tiny test model, and small helpers for node tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from support.pack import REPO

MODEL_NAME = "ConsisID-preview"
FACE_FILE = "consisid_face.png"
TINY = {"width": 48, "height": 32, "steps": 2}  # the tiny model's native size (TinySpec defaults)
DEFAULT_PHOTO = REPO / "consisid_core" / "assets" / "default_face.png"  # a real portrait (skimage astronaut)


def install_tiny_model(folder: Path) -> Path:
    """A tiny random ConsisID model folder with a face_encoder/ at `folder` (models/consisid/<name>/).

    Its face detector finds the real face of DEFAULT_PHOTO (the networks' outputs are noise otherwise).
    """
    from consisid_core.demo.face_models import write_face_encoder
    from consisid_core.demo.face_onnx import DEFAULT_FACE
    from consisid_core.demo.video_models import TinySpec, write_tiny_model

    write_tiny_model(folder, TinySpec())
    write_face_encoder(folder, eva="tiny", plant=DEFAULT_FACE)
    return folder


def blind_face_detector(folder: Path) -> None:
    """Replace the model's SCRFD stand-in by one that never fires (with a planted face_encoder RetinaFace is silent)."""
    import numpy as np

    from consisid_core.demo.face_onnx import write_detector

    target = folder / "face_encoder" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx"
    write_detector(target, np.random.default_rng(0), fires=False)


def api_workflow(name: str) -> dict:
    return json.loads((REPO / "workflows" / "api" / name).read_text(encoding="utf-8"))


def tiny_prompt(name: str = "consisid_core_video_api.json", **overrides) -> dict:
    """A shipped API workflow set to the tiny model's size (fp32, few steps); overrides are `input=value`."""
    prompt = copy.deepcopy(api_workflow(name))
    settings = {"precision": "fp32", "memory_mode": "none", **TINY, "num_frames": 9, **overrides}
    for node in prompt.values():
        for key, value in settings.items():
            if key in node["inputs"] and not isinstance(node["inputs"][key], list):
                node["inputs"][key] = value
    return prompt


def nodes_of(prompt: dict, class_type: str) -> list[str]:
    return [i for i, n in prompt.items() if n["class_type"] == class_type]
