"""The shipped API workflows run end to end through the node classes on the tiny model, as ComfyUI runs them:
frames with the requested count, the same video as consisid_core's one-call generate, models cached between
runs, progress per step, Cancel within a step and previews (ComfyUI's memory manager: test_comfy_memory.py)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from comfy_stub import core_nodes, harness
from support.node_graph import nodes_of, tiny_prompt


def _only(prompt: dict, class_type: str) -> str:
    ids = nodes_of(prompt, class_type)
    assert len(ids) == 1
    return ids[0]


@pytest.mark.parametrize("workflow, frames", [("consisid_core_video_api.json", 17), ("consisid_basic_api.json", 9)])
def test_api_workflow_makes_a_video_with_the_requested_frames(comfyui, workflow, frames):
    prompt = tiny_prompt(workflow, num_frames=frames)
    result = comfyui.run(prompt)

    assert set(result.order) == set(prompt), "every node of the workflow ran"
    images = result.outputs[_only(prompt, "ConsisIDDecode")][0]
    assert tuple(images.shape) == (frames, 32, 48, 3)
    assert images.dtype == torch.float32 and 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    ui = result.ui[_only(prompt, "SaveVideo" if "core" in workflow else "VHS_VideoCombine")]
    entry = (ui["images"] if "images" in ui else ui["gifs"])[0]  # core vs VHS history keys
    path = os.path.join(comfyui.folder_paths.get_output_directory(), entry["subfolder"], entry["filename"])
    assert core_nodes.count_frames(path) == frames


def test_node_graph_equals_one_call_generate(comfyui):
    """The nodes are thin: the graph gives exactly consisid_core's generate() on the same face and seed."""
    prompt = tiny_prompt(seed=1234, steps=3, vae_tiling=False)
    result = comfyui.run(prompt)
    frames = result.outputs[_only(prompt, "ConsisIDDecode")][0]

    engine = result.outputs[_only(prompt, "ConsisIDModelLoader")][0].get()
    aligned = result.outputs[_only(prompt, "ConsisIDFaceCropAlign")][0][0]
    local = result.outputs[_only(prompt, "ConsisIDLocalExtractor")][0]
    text = prompt[_only(prompt, "ConsisIDTextEncode")]["inputs"]
    expected = engine.generate(
        text["prompt"], text["negative_prompt"], image=(aligned.numpy() * 255).round().astype("uint8"),
        id_cond=local.id_cond, id_vit_hidden=local.id_vit_hidden, height=32, width=48, num_frames=9,
        num_inference_steps=3, guidance_scale=6.0, seed=1234,
    )
    assert torch.equal(frames, expected)


def test_sampler_re_encodes_the_face_for_another_size(comfyui):
    """Global Extractor encodes at the native size; a checkpoint without learned positions can sample other sizes."""
    import shutil

    from consisid_core.demo.video_models import TinySpec, write_tiny_model
    free = comfyui.root / "models" / "consisid" / "FreeSize"
    write_tiny_model(free, TinySpec(learned_positions=False))
    shutil.copytree(comfyui.root / "models" / "consisid" / "ConsisID-preview" / "face_encoder", free / "face_encoder",
                    copy_function=os.link)
    try:
        prompt = tiny_prompt(width=64, height=48)
        prompt[_only(prompt, "ConsisIDModelLoader")]["inputs"]["model"] = "FreeSize"  # faces: the usual folder
        result = comfyui.run(prompt)
    finally:
        shutil.rmtree(free)
    glob = result.outputs[_only(prompt, "ConsisIDGlobalExtractor")][0].conditioning
    assert (glob.height, glob.width) == (32, 48), "encoded at the checkpoint's native size"
    assert tuple(result.outputs[_only(prompt, "ConsisIDDecode")][0].shape) == (9, 48, 64, 3)


def test_same_settings_reuse_the_loaded_models_and_new_settings_release_them(comfyui):
    prompt = tiny_prompt(steps=1)
    loader, face_loader = _only(prompt, "ConsisIDModelLoader"), _only(prompt, "ConsisIDFaceModelsLoader")
    first = comfyui.run(prompt).outputs
    second = comfyui.run(tiny_prompt(steps=1, seed=7)).outputs
    handle = first[loader][0]
    assert second[loader][0] is handle and handle.get() is handle.get()
    assert second[face_loader][0] is first[face_loader][0]
    loads = handle.loads
    comfyui.run(tiny_prompt(steps=1, seed=8))
    assert handle.loads == loads, "no reload with the same settings"

    changed = comfyui.run(tiny_prompt(steps=1, memory_mode="model_offload")).outputs[loader][0]
    assert changed is not handle and changed.loaded
    assert not handle.loaded, "the model loaded with the old settings was released"


def test_progress_bar_ticks_once_per_step_for_the_sampler(comfyui):
    server = sys.modules["server"].PromptServer.instance
    prompt = tiny_prompt(steps=4)
    comfyui.run(prompt)
    sampler = _only(prompt, "ConsisIDSampler")
    ticks = [(p["value"], p["max"]) for p in server.progress if p["node"] == sampler]
    assert ticks == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(p["preview"] is None for p in server.progress), "previews are off by default (--preview-method none)"


def test_cancel_stops_sampling_within_one_step_and_the_next_run_works(comfyui):
    import comfy.model_management as mm
    import comfy.utils

    prompt = tiny_prompt(steps=6, seed=99)
    sampler = _only(prompt, "ConsisIDSampler")
    seen = []
    hook = comfy.utils.PROGRESS_BAR_HOOK

    def cancel_at_step_two(value, total, preview, node_id=None, **kwargs):
        seen.append(value)
        if value == 2:
            mm.interrupt_current_processing(True)  # what POST /interrupt does
        return hook(value, total, preview, node_id=node_id, **kwargs)

    comfy.utils.set_progress_bar_global_hook(cancel_at_step_two)
    with pytest.raises(harness.NodeFailure) as failure:
        comfyui.run(prompt)
    assert failure.value.node_id == sampler
    assert isinstance(failure.value.exception, mm.InterruptProcessingException)
    assert seen == [1, 2], "stopped at the first step after the interrupt"

    comfy.utils.set_progress_bar_global_hook(hook)
    frames = comfyui.run(prompt).outputs[_only(prompt, "ConsisIDDecode")][0]
    assert frames.shape[0] == 9


def test_latent_previews_when_enabled(comfyui):
    from comfy.cli_args import LatentPreviewMethod, args

    server = sys.modules["server"].PromptServer.instance
    args.preview_method = LatentPreviewMethod.Latent2RGB
    try:
        prompt = tiny_prompt(steps=2)
        comfyui.run(prompt)
    finally:
        args.preview_method = LatentPreviewMethod.NoPreviews
    previews = [p["preview"] for p in server.progress if p["node"] == _only(prompt, "ConsisIDSampler")]
    assert len(previews) == 2
    for kind, image, max_size in previews:
        assert kind == "JPEG" and max_size == 512
        assert image.size == (48, 32), "the 6x4 latent frame scaled x8 up to the video size"
