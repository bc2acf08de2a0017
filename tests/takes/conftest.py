"""Takes fixtures: the light scoring models of tests/metrics (Haar detector, tiny recogniser and CLIP)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

METRICS_TESTS = Path(__file__).resolve().parents[1] / "metrics"
if str(METRICS_TESTS) not in sys.path:
    sys.path.insert(0, str(METRICS_TESTS))


@pytest.fixture(scope="session")
def light_eval_models(tmp_path_factory):
    """EvalModels with a real face detector (OpenCV Haar) and tiny random networks, for scoring logic."""
    from consisid_core.face.insightface_models import ArcFaceRecognizer
    from consisid_core.metrics import EvalModels
    from consisid_core.metrics.clip_score import ClipScorer
    from metrics_fixtures import HaarDetector, PooledFeatures, write_light_models

    folder = write_light_models(tmp_path_factory.mktemp("takes_light_models"))
    return EvalModels(detector=HaarDetector(), recognizer=ArcFaceRecognizer(folder / "w600k_r50.onnx", ["CPUExecutionProvider"]),
                      curricular=PooledFeatures(512).eval(), inception=PooledFeatures(256).eval(),
                      clip=ClipScorer(folder / "clip-vit-base-patch32"))


@pytest.fixture(scope="session")
def astronaut():
    return pytest.importorskip("skimage.data").astronaut()


@pytest.fixture(scope="session")
def takes_comfy_root(tmp_path_factory) -> Path:
    """A ComfyUI-like folder with the tiny model and the face photo (as tests/nodes/conftest.py builds it)."""
    import shutil

    from support.node_graph import DEFAULT_PHOTO, FACE_FILE, MODEL_NAME, install_tiny_model

    base = tmp_path_factory.mktemp("ComfyUI_takes")
    install_tiny_model(base / "models" / "consisid" / MODEL_NAME)
    (base / "input").mkdir()
    shutil.copy(DEFAULT_PHOTO, base / "input" / FACE_FILE)
    return base


@pytest.fixture
def comfyui(takes_comfy_root, light_eval_models):
    """The ComfyUI stand-in with the pack imported; the Eval Models Loader hands out the light scoring models."""
    from types import SimpleNamespace

    import comfy_stub
    from comfy_stub import core_nodes, harness
    from support.pack import import_pack, pack_module

    folder_paths = comfy_stub.activate(takes_comfy_root)
    pack = import_pack()
    pack_module("nodes.comfy_bridge").register_model_folders()
    pack_module("nodes.prompt_checks").register()

    nodes = pack_module("nodes").NODES_BY_ID

    class LightEvalModels(nodes["ConsisIDEvalModelsLoader"]):
        @classmethod
        def validate_inputs(cls, model):
            return True

        @classmethod
        def execute(cls, model, device, onnx_provider):
            return (light_eval_models,)

    mappings = {**nodes, "ConsisIDEvalModelsLoader": LightEvalModels, **core_nodes.MAPPINGS}
    yield SimpleNamespace(root=takes_comfy_root, folder_paths=folder_paths, pack=pack, mappings=mappings,
                          run=lambda prompt: harness.execute(prompt, mappings))
    comfy_stub.deactivate()
