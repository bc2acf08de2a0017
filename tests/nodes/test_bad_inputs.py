"""Bad inputs give node errors that name the node and say what to do: no face, wrong sizes, missing model
folder, missing face weights. Validation-time errors come from ComfyUI's validate_prompt path (the harness),
run-time ones from the node itself."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from comfy_stub import harness
from support.node_graph import MODEL_NAME, blind_face_detector, nodes_of, tiny_prompt

ANTELOPE = ("scrfd_10g_bnkps.onnx", "glintr100.onnx")


def _link_tree(source: Path, target: Path, skip=()) -> None:
    """Copy a folder as hard links (cheap), leaving out relative paths in `skip`."""
    for path in source.rglob("*"):
        rel = path.relative_to(source)
        if path.is_dir() or any(str(rel).startswith(s) for s in skip):
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(path, target / rel)


@pytest.fixture
def extra_model(comfyui):
    """Make models/consisid/<name> from parts of the tiny model; removed after the test."""
    made = []
    preview = comfyui.root / "models" / "consisid" / MODEL_NAME

    def make(name: str, skip=(), only=None) -> Path:
        folder = comfyui.root / "models" / "consisid" / name
        made.append(folder)
        _link_tree(preview if only is None else preview / only, folder if only is None else folder / only, skip)
        if not (folder / "model_index.json").exists():
            shutil.copy(preview / "model_index.json", folder / "model_index.json")
        return folder

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(comfyui.root / "models" / "insightface", ignore_errors=True)


def _validation_error(comfyui, prompt) -> str:
    with pytest.raises(harness.PromptError) as error:
        comfyui.run(prompt)
    return str(error.value)


def _run_error(comfyui, prompt) -> harness.NodeFailure:
    with pytest.raises(harness.NodeFailure) as failure:
        comfyui.run(prompt)
    return failure.value


# ---- missing model folder / files ------------------------------------------------------------------------


def test_missing_model_folder_is_refused_at_validation_with_where_to_put_it(comfyui):
    prompt = tiny_prompt(model="NotDownloaded")
    message = _validation_error(comfyui, prompt)
    assert "ConsisID DiT Loader (ConsisIDModelLoader)" in message
    assert "ConsisID Face Models Loader (ConsisIDFaceModelsLoader)" in message
    expected = str(comfyui.root / "models" / "consisid" / "NotDownloaded")
    assert "'NotDownloaded' was not found" in message and expected in message
    assert "BestWishYsh/ConsisID-preview" in message


def test_missing_model_folder_at_run_time_is_a_node_error(comfyui):
    loader = comfyui.mappings["ConsisIDModelLoader"]()
    with pytest.raises(Exception) as error:
        loader.load("NotDownloaded", "fp32", "none", "sdpa")
    assert type(error.value).__name__ == "ConsisIDNodeError"
    assert str(error.value).startswith("ConsisID DiT Loader (ConsisIDModelLoader): model folder 'NotDownloaded'")


def test_incomplete_model_folder_names_the_missing_file(comfyui, extra_model):
    folder = extra_model("NoTransformerWeights", skip=("transformer/diffusion_pytorch_model",))
    message = _validation_error(comfyui, tiny_prompt(model="NoTransformerWeights"))
    assert "ConsisID DiT Loader (ConsisIDModelLoader)" in message
    assert f"no weights in {folder / 'transformer'}" in message and "diffusion_pytorch_model.safetensors" in message


def test_missing_face_weights_are_listed_with_their_folder(comfyui, extra_model):
    folder = extra_model("NoFaceWeights", skip=("face_encoder/EVA02", "face_encoder/models"))
    message = _validation_error(comfyui, tiny_prompt(model="NoFaceWeights"))
    assert "ConsisID Face Models Loader (ConsisIDFaceModelsLoader)" in message
    face_dir = folder / "face_encoder"
    assert f"missing: {face_dir / 'EVA02_CLIP_L_336_psz14_s6B.pt'}" in message
    shared = comfyui.root / "models" / "insightface" / "models" / "antelopev2"
    assert f"missing: {shared / 'scrfd_10g_bnkps.onnx'}" in message, "antelopev2 is asked for in ComfyUI's folder"
    assert f"searched: {face_dir}, {shared}, {face_dir / 'models' / 'antelopev2'}" in message


def test_antelopev2_is_taken_from_comfyui_insightface_folder(comfyui, extra_model):
    preview_ante = comfyui.root / "models" / "consisid" / MODEL_NAME / "face_encoder" / "models" / "antelopev2"
    extra_model("SharedAntelope", skip=("face_encoder/models",))
    shared = comfyui.root / "models" / "insightface" / "models" / "antelopev2"
    _link_tree(preview_ante, shared)
    loader = comfyui.mappings["ConsisIDFaceModelsLoader"]
    assert loader.VALIDATE_INPUTS("SharedAntelope") is True
    (handle,) = loader().load("SharedAntelope", "CPU", "cpu", "fp32")
    assert handle.get().files.antelopev2_dir == shared


def test_nested_antelopev2_folder_is_explained(comfyui, extra_model):
    preview_ante = comfyui.root / "models" / "consisid" / MODEL_NAME / "face_encoder" / "models" / "antelopev2"
    extra_model("NestedAntelope", skip=("face_encoder/models",))
    nested = comfyui.root / "models" / "insightface" / "models" / "antelopev2" / "antelopev2"
    _link_tree(preview_ante, nested)
    message = comfyui.mappings["ConsisIDFaceModelsLoader"].VALIDATE_INPUTS("NestedAntelope")
    assert message.startswith("ConsisID Face Models Loader (ConsisIDFaceModelsLoader):")
    assert "one folder too deep" in message and str(nested) in message


def test_cuda_only_attention_on_a_cpu_comfyui_is_a_node_error(comfyui):
    failure = _run_error(comfyui, tiny_prompt(attention="sdpa_flash"))
    assert failure.class_type == "ConsisIDModelLoader"
    assert "attention 'sdpa_flash' needs a CUDA GPU" in str(failure.exception) and "sdpa_math" in str(failure.exception)


# ---- sizes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, expected", [
    ({"width": 64}, "64x32 (width x height) is not supported by any installed ConsisID checkpoint: "
                    "ConsisID-preview: 48x32 only (native 9 frames). Set width=48, height=32."),
    ({"width": 50}, "width=50 must be a multiple of 16"),
    ({"num_frames": 10}, "num_frames=10 must be 8k+1 between 9 and 1025 (e.g. 9 or 17"),
    ({"height": 8192}, "height=8192 must be a multiple of 16 from 16 to 4096"),
])
def test_unsupported_sizes_are_refused_before_anything_runs(comfyui, overrides, expected):
    server = sys.modules["server"].PromptServer.instance
    before = len(comfyui.registry.handles())
    with pytest.raises(harness.PromptError) as error:
        comfyui.run(tiny_prompt(**overrides))
    sampler = nodes_of(tiny_prompt(), "ConsisIDSampler")[0]
    assert list(error.value.node_errors) == [sampler]
    assert all(r["type"] == "custom_validation_failed" for r in error.value.node_errors[sampler])
    assert "ConsisID Sampler (ConsisIDSampler): " in str(error.value) and expected in str(error.value)
    assert server.progress == [] and len(comfyui.registry.handles()) == before, "nothing ran"


def test_a_size_only_another_checkpoint_supports_is_refused_when_the_sampler_starts(comfyui):
    from consisid_core.testing.tiny_models import TinySpec, write_tiny_model

    square = comfyui.root / "models" / "consisid" / "Square64"
    write_tiny_model(square, TinySpec(height=64, width=64))
    try:
        prompt = tiny_prompt(width=64, height=64)  # valid for Square64, but the loader loads ConsisID-preview
        failure = _run_error(comfyui, prompt)
    finally:
        shutil.rmtree(square)
    assert failure.class_type == "ConsisIDSampler"
    message = str(failure.exception)
    assert message.startswith("ConsisID Sampler (ConsisIDSampler): this checkpoint has learned positional embeddings")
    assert "only generates 48x32" in message and "Set width=48, height=32" in message
    server = sys.modules["server"].PromptServer.instance
    assert not any(p["node"] == failure.node_id for p in server.progress), "refused before the first step"


def test_sampler_validation_checks_min_and_max_itself():
    """Declaring width/height/num_frames in VALIDATE_INPUTS makes ComfyUI skip their min/max: we check them."""
    from support.pack import pack_module

    sizes = pack_module("nodes.sizes")
    assert sizes.check(0, 480, 49, infos={}) is not None
    assert sizes.check(720, 480, 1, infos={}) is not None
    assert sizes.check(720, 480, 49, infos={}) is None
    assert sizes.check(None, None, None, infos={}) is None, "linked (converted) widgets are checked at run time"


# ---- faces ----------------------------------------------------------------------------------------------


@pytest.fixture
def blind_model(comfyui, extra_model):
    """models/consisid/NoFaceFound: the tiny face_encoder with detectors that never find a face."""
    folder = extra_model("NoFaceFound", only="face_encoder")
    os.remove(folder / "face_encoder" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx")
    blind_face_detector(folder)
    return folder


@pytest.mark.parametrize("node", ["ConsisIDFaceCropAlign", "ConsisIDLocalExtractor"])
def test_photo_without_a_face_is_a_clear_node_error(comfyui, blind_model, node):
    from skimage import data

    cat = torch.from_numpy(data.chelsea().astype(np.float32) / 255.0)[None]
    (face_models,) = comfyui.mappings["ConsisIDFaceModelsLoader"]().load("NoFaceFound", "CPU", "cpu", "fp32")
    cls = comfyui.mappings[node]
    args = {"face_models": face_models, "image": cat, "face_selection": "largest", "face_index": 0}
    if node == "ConsisIDLocalExtractor":
        args["face_scale"] = 1.0
    with pytest.raises(Exception) as error:
        getattr(cls(), cls.FUNCTION)(**args)
    message = str(error.value)
    assert type(error.value).__name__ == "ConsisIDNodeError"
    assert message.startswith(f"{cls.DISPLAY_NAME} ({node}): No usable face in the 451x300 photo")
    assert "clear, frontal, well-lit face" in message and "face_selection" in message


def test_no_face_in_a_workflow_stops_at_the_face_node(comfyui):
    tiny = np.full((12, 12, 3), 128, np.uint8)  # smaller than any detector can use
    from PIL import Image

    Image.fromarray(tiny).save(comfyui.root / "input" / "tiny.png")
    try:
        failure = _run_error(comfyui, tiny_prompt(image="tiny.png"))
    finally:
        os.remove(comfyui.root / "input" / "tiny.png")
    assert failure.class_type in ("ConsisIDFaceCropAlign", "ConsisIDLocalExtractor")
    assert "No usable face in the 12x12 photo" in str(failure.exception)


def test_face_index_past_the_last_face_says_how_many_there_are(comfyui):
    failure = _run_error(comfyui, tiny_prompt(face_selection="index", face_index=3))
    assert failure.class_type in ("ConsisIDFaceCropAlign", "ConsisIDLocalExtractor")
    assert "face_selection=3 but only 1 face(s) were found" in str(failure.exception)


def test_a_batch_names_the_photo_without_a_face(comfyui, blind_model):
    from skimage import data

    cat = torch.from_numpy(data.chelsea()[:256, :256].astype(np.float32) / 255.0)
    (face_models,) = comfyui.mappings["ConsisIDFaceModelsLoader"]().load("NoFaceFound", "CPU", "cpu", "fp32")
    with pytest.raises(Exception) as error:
        comfyui.mappings["ConsisIDLocalExtractor"]().extract(face_models, torch.stack([cat, cat]), 1.0, "largest", 0)
    assert "Local Extractor (ConsisIDLocalExtractor): image 1 of 2: No usable face" in str(error.value)
