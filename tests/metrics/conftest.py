"""Scoring fixtures: random scoring models in the official file layouts, real photos and videos made from them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
if str(DATA.parent) not in sys.path:  # the metrics_* helper modules next to this file
    sys.path.insert(0, str(DATA.parent))

from metrics_fixtures import HaarDetector, PooledFeatures  # noqa: E402


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photos shipped in packages (RGB uint8)."""
    skdata = pytest.importorskip("skimage.data")
    idata = pytest.importorskip("insightface.data")
    return {
        "astronaut": skdata.astronaut(),
        "coffee": skdata.coffee(),
        "chelsea": skdata.chelsea(),
        "t1": np.ascontiguousarray(idata.get_image("t1")[:, :, ::-1]),
    }


@pytest.fixture(scope="session")
def eval_model_dir(tmp_path_factory) -> Path:
    """A ConsisID model folder whose sibling `eval/` holds Inception and CLIP (full-size IR-101 and Inception)."""
    from metrics_fixtures import write_eval_models

    return write_eval_models(tmp_path_factory.mktemp("eval_models"))


@pytest.fixture(scope="session")
def eval_models(eval_model_dir):
    from consisid_core.metrics import load_eval_models

    return load_eval_models(eval_model_dir)


@pytest.fixture(scope="session")
def fast_models(tmp_path_factory):
    """Haar detector, the tiny buffalo_l recogniser, pooled-colour stand-ins for IR-101 and Inception and a tiny
    CLIP: for the protocol's logic (no full-size weights to write or run)."""
    from consisid_core.face.insightface_models import ArcFaceRecognizer
    from consisid_core.metrics import EvalModels
    from consisid_core.metrics.clip_score import ClipScorer
    from metrics_fixtures import write_light_models

    folder = write_light_models(tmp_path_factory.mktemp("light_models"))
    return EvalModels(detector=HaarDetector(), recognizer=ArcFaceRecognizer(folder / "w600k_r50.onnx", ["CPUExecutionProvider"]),
                      curricular=PooledFeatures(512).eval(), inception=PooledFeatures(256).eval(),
                      clip=ClipScorer(folder / "clip-vit-base-patch32"))
