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
from support.pack import pack_module

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
    loader = comfyui.mappings["ConsisIDModelLoader"]
    with pytest.raises(Exception) as error:
        loader.execute("NotDownloaded", "fp32", "none", "sdpa")
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
    own = face_dir / "models" / "antelopev2"  # where the model check (canvas badge) also says it goes
    assert f"missing: {own / 'scrfd_10g_bnkps.onnx'}" in message
    assert f"searched: {face_dir}, {own}, {shared}" in message, "ComfyUI's insightface folder is searched too"


def test_antelopev2_is_taken_from_comfyui_insightface_folder(comfyui, extra_model):
    preview_ante = comfyui.root / "models" / "consisid" / MODEL_NAME / "face_encoder" / "models" / "antelopev2"
    extra_model("SharedAntelope", skip=("face_encoder/models",))
    shared = comfyui.root / "models" / "insightface" / "models" / "antelopev2"
    _link_tree(preview_ante, shared)
    loader = comfyui.mappings["ConsisIDFaceModelsLoader"]
    assert loader.validate_inputs("SharedAntelope") is True
    (handle,) = loader.execute("SharedAntelope", "CPU", "cpu", "fp32")
    assert handle.get().files.antelopev2_dir == shared


def test_nested_antelopev2_folder_is_explained(comfyui, extra_model):
    preview_ante = comfyui.root / "models" / "consisid" / MODEL_NAME / "face_encoder" / "models" / "antelopev2"
    extra_model("NestedAntelope", skip=("face_encoder/models",))
    nested = comfyui.root / "models" / "insightface" / "models" / "antelopev2" / "antelopev2"
    _link_tree(preview_ante, nested)
    message = comfyui.mappings["ConsisIDFaceModelsLoader"].validate_inputs("NestedAntelope")
    assert message.startswith("ConsisID Face Models Loader (ConsisIDFaceModelsLoader):")
    assert "one folder too deep" in message and str(nested) in message


def test_cuda_only_attention_on_a_cpu_comfyui_is_a_node_error(comfyui):
    failure = _run_error(comfyui, tiny_prompt(attention="sdpa_flash"))
    assert failure.class_type == "ConsisIDModelLoader"
    assert "attention 'sdpa_flash' needs a CUDA GPU" in str(failure.exception) and "sdpa_math" in str(failure.exception)


# ---- sizes ----------------------------------------------------------------------------------------------


SIZE_FIELDS = ("width", "height", "num_frames")


@pytest.mark.parametrize("overrides, expected", [
    ({"width": 64}, "size - ConsisID Sampler (ConsisIDSampler): width=64 is not supported by any installed ConsisID "
                    "checkpoint (ConsisID-preview: 48x32 only, native 9 frames). Set width=48."),
    ({"width": 64, "height": 64}, "size - ConsisID Sampler (ConsisIDSampler): width=64, height=64 is not supported "
                                  "by any installed ConsisID checkpoint (ConsisID-preview: 48x32 only, native 9 "
                                  "frames). Set width=48, height=32."),
    ({"width": 50}, "size - ConsisID Sampler (ConsisIDSampler): width=50 must be a multiple of 16 from 16 to 4096."),
    ({"num_frames": 10}, "size - ConsisID Sampler (ConsisIDSampler): num_frames=10 must be 8k+1 between 9 and 1025 "
                         "(e.g. 9 or 17; ConsisID-preview was trained on 49)."),
    ({"width": 50, "num_frames": 10}, "size - ConsisID Sampler (ConsisIDSampler): width=50 must be a multiple of 16 "
                                      "from 16 to 4096; num_frames=10 must be 8k+1"),
    ({"num_frames": 41}, "size - ConsisID Sampler (ConsisIDSampler): num_frames=41 is outside what the installed "
                         "ConsisID checkpoints support (ConsisID-preview: 9 to 33, native 9); use 8k+1 frames within "
                         "that range."),
])
def test_a_wrong_size_is_one_validation_error_naming_only_the_wrong_values(comfyui, overrides, expected):
    """ComfyUI files a failed validate_inputs once per argument: the sampler's takes one (`size`), so one error."""
    server = sys.modules["server"].PromptServer.instance
    before = len(comfyui.registry.handles())
    with pytest.raises(harness.PromptError) as error:
        comfyui.run(tiny_prompt(**overrides))
    sampler = nodes_of(tiny_prompt(), "ConsisIDSampler")[0]
    assert list(error.value.node_errors) == [sampler]
    (reason,) = error.value.node_errors[sampler]
    assert reason["type"] == "custom_validation_failed"
    assert reason["details"].startswith(expected), reason["details"]
    for name in SIZE_FIELDS:
        assert (f"{name}=" in reason["details"]) == (name in overrides), f"names exactly the wrong values: {name}"
    assert server.progress == [] and len(comfyui.registry.handles()) == before, "nothing ran"


@pytest.mark.comfyui
def test_a_wrong_size_is_one_message_in_a_real_comfyui(tmp_path):
    """The same through a real ComfyUI 0.8 (COMFYUI_DIR, run by COMFYUI_PYTHON; skipped without one): its on_prompt
    hook runs, its executor hands the V3 Sampler's optional `size` input to validate_inputs and files one error;
    a frame count the installed checkpoint cannot make is refused there too, before anything runs."""
    import json
    import urllib.error
    import urllib.request

    from support import comfy_server
    from support.node_graph import DEFAULT_PHOTO, FACE_FILE, install_tiny_model
    from support.pack import REPO

    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir or not os.path.isfile(os.path.join(comfy_dir, "comfy_api", "v0_0_2", "__init__.py")):
        pytest.skip("COMFYUI_DIR (a ComfyUI 0.8 checkout) is not set: the harness checked the same path")
    base = tmp_path / "comfyui_base"
    install_tiny_model(base / "models" / "consisid" / MODEL_NAME)
    (base / "input").mkdir(parents=True)
    shutil.copy(DEFAULT_PHOTO, base / "input" / FACE_FILE)
    server = comfy_server.start(Path(comfy_dir), os.environ.get("COMFYUI_PYTHON", sys.executable), base, REPO)
    sampler = nodes_of(tiny_prompt(), "ConsisIDSampler")[0]
    found = {}
    try:
        for overrides in ({"width": 50, "num_frames": 10}, {"num_frames": 41}, {}):
            body = json.dumps({"prompt": tiny_prompt(steps=1, **overrides), "client_id": "size-check"}).encode()
            request = urllib.request.Request(f"{server.url}/prompt", body, {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    found[str(overrides)] = (response.status, json.loads(response.read()))
            except urllib.error.HTTPError as error:
                found[str(overrides)] = (error.code, json.loads(error.read()))
    finally:
        server.stop()
    for overrides, start in ((str({"width": 50, "num_frames": 10}), "width=50 must be a multiple of 16"),
                             (str({"num_frames": 41}), "num_frames=41 is outside what the installed")):
        status, answer = found[overrides]
        assert status == 400 and list(answer["node_errors"]) == [sampler], answer
        (error,) = answer["node_errors"][sampler]["errors"]
        assert error["type"] == "custom_validation_failed", error
        assert error["details"].startswith(f"size - ConsisID Sampler (ConsisIDSampler): {start}"), error
    assert found["{}"][0] == 200 and not found["{}"][1].get("node_errors"), found["{}"]


def test_a_size_out_of_the_widget_range_is_comfyuis_own_single_error(comfyui):
    """min/max stay ComfyUI's check (width/height/num_frames are not validate_inputs arguments): one error."""
    with pytest.raises(harness.PromptError) as error:
        comfyui.run(tiny_prompt(height=8192))
    (reason,) = error.value.node_errors[nodes_of(tiny_prompt(), "ConsisIDSampler")[0]]
    assert (reason["type"], reason["message"], reason["details"]) == (
        "value_bigger_than_max", "Value 8192 bigger than max of 4096", "height")


def test_a_correct_or_linked_size_leaves_the_prompt_untouched(comfyui):
    import copy

    checks = pack_module("nodes.prompt_checks")
    sampler = nodes_of(tiny_prompt(), "ConsisIDSampler")[0]
    for prompt in (tiny_prompt(), tiny_prompt(width=["99", 0], height=64)):
        body = {"prompt": copy.deepcopy(prompt), "client_id": "x"}
        assert checks.mark_wrong_sizes(body) == {"prompt": prompt, "client_id": "x"}
    stale = tiny_prompt()
    stale[sampler]["inputs"]["size"] = {"width": 1, "height": 1, "num_frames": 1}
    assert "size" not in checks.mark_wrong_sizes({"prompt": stale})["prompt"][sampler]["inputs"], "re-decided"
    assert comfyui.mappings["ConsisIDSampler"].validate_inputs() is True


def test_a_size_only_another_checkpoint_supports_is_refused_when_the_sampler_starts(comfyui):
    from consisid_core.demo.video_models import TinySpec, write_tiny_model

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


def test_size_check_covers_ranges_at_run_time_and_leaves_them_to_comfyui_at_validation():
    sizes = pack_module("nodes.sizes")
    assert sizes.check(0, 480, 49, infos={}) == "width=0 must be a multiple of 16 from 16 to 4096."
    assert sizes.check(720, 480, 1, infos={}).startswith("num_frames=1 must be 8k+1")
    assert sizes.check(720, 480, 49, infos={}) is None
    assert sizes.check(None, None, None, infos={}) is None, "linked (converted) widgets are checked at run time"
    assert sizes.check(0, 8192, 2000, infos={}, ranges=False) is None, "ComfyUI's min/max report these"
    assert sizes.check(0, 50, 2000, infos={}, ranges=False) == "height=50 must be a multiple of 16 from 16 to 4096."
    spec = pack_module("nodes.sampling_nodes").ConsisIDSampler.INPUT_TYPES()["required"]
    assert {k: (spec[k][1]["min"], spec[k][1]["max"]) for k in SIZE_FIELDS} == sizes.RANGES


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
    (face_models,) = comfyui.mappings["ConsisIDFaceModelsLoader"].execute("NoFaceFound", "CPU", "cpu", "fp32")
    cls = comfyui.mappings[node]
    args = {"face_models": face_models, "image": cat, "face_selection": "largest", "face_index": 0}
    if node == "ConsisIDLocalExtractor":
        args["face_scale"] = 1.0
    with pytest.raises(Exception) as error:
        cls.execute(**args)
    message = str(error.value)
    assert type(error.value).__name__ == "ConsisIDNodeError"
    assert message.startswith(f"{cls.DISPLAY_NAME} ({node}): No usable face in the 451x300 photo")
    assert "clear, frontal, well-lit face" in message and "face_selection" in message
    legacy = "The Local Extractor read this photo itself through its legacy image input; connect Face Crop&Align's"
    assert (legacy in message) == (node == "ConsisIDLocalExtractor"), message  # the photo is read once otherwise


def test_no_face_in_a_workflow_stops_at_the_face_node(comfyui):
    tiny = np.full((12, 12, 3), 128, np.uint8)  # smaller than any detector can use
    from PIL import Image

    Image.fromarray(tiny).save(comfyui.root / "input" / "tiny.png")
    try:
        failure = _run_error(comfyui, tiny_prompt(image="tiny.png"))
    finally:
        os.remove(comfyui.root / "input" / "tiny.png")
    assert failure.class_type == "ConsisIDFaceCropAlign", "the one node that reads the photo"
    assert "No usable face in the 12x12 photo" in str(failure.exception)


def test_face_index_past_the_last_face_says_how_many_there_are(comfyui):
    failure = _run_error(comfyui, tiny_prompt(face_selection="index", face_index=3))
    assert failure.class_type in ("ConsisIDFaceCropAlign", "ConsisIDLocalExtractor")
    assert "face_selection=3 but only 1 face(s) were found" in str(failure.exception)


def test_a_batch_names_the_photo_without_a_face(comfyui, blind_model):
    from skimage import data

    cat = torch.from_numpy(data.chelsea()[:256, :256].astype(np.float32) / 255.0)
    (face_models,) = comfyui.mappings["ConsisIDFaceModelsLoader"].execute("NoFaceFound", "CPU", "cpu", "fp32")
    with pytest.raises(Exception) as error:
        comfyui.mappings["ConsisIDLocalExtractor"].execute(face_models, torch.stack([cat, cat]), 1.0, "largest", 0)
    assert "Local Extractor (ConsisIDLocalExtractor): image 1 of 2: No usable face" in str(error.value)
