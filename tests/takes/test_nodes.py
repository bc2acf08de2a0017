"""ConsisID Takes + ConsisID Pick Take through the ComfyUI stand-in, on the tiny model and the shipped workflow."""

from __future__ import annotations

import sys

import pytest
import torch

from comfy_stub import harness
from support.node_graph import nodes_of, tiny_prompt

WORKFLOW = "consisid_takes_api.json"


def _only(prompt: dict, class_type: str) -> str:
    ids = nodes_of(prompt, class_type)
    assert len(ids) == 1
    return ids[0]


def _single_run(result, prompt, seed: int, steps: int) -> torch.Tensor:
    """consisid_core's one-call generate on the graph's face and identity: what Sampler + Decode give."""
    engine = result.outputs[_only(prompt, "ConsisIDModelLoader")][0].get()
    aligned = result.outputs[_only(prompt, "ConsisIDFaceCropAlign")][0][0]
    local = result.outputs[_only(prompt, "ConsisIDLocalExtractor")][0]
    text = prompt[_only(prompt, "ConsisIDTextEncode")]["inputs"]
    return engine.generate(
        text["prompt"], text["negative_prompt"], image=(aligned.numpy() * 255).round().astype("uint8"),
        id_cond=local.id_cond, id_vit_hidden=local.id_vit_hidden, height=32, width=48, num_frames=9,
        num_inference_steps=steps, guidance_scale=6.0, seed=seed)


@pytest.fixture
def progress_text(monkeypatch):
    server = sys.modules["server"].PromptServer.instance
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(server, "send_progress_text", lambda text, node_id, sid=None: seen.append((text, node_id)),
                        raising=False)
    return seen


def test_workflow_keeps_the_best_take_exactly_as_a_single_run(comfyui, progress_text):
    prompt = tiny_prompt(WORKFLOW, steps=2, vae_tiling=False, seed=7)
    result = comfyui.run(prompt)
    assert set(result.order) == set(prompt)
    takes_id, pick_id = _only(prompt, "ConsisIDTakes"), _only(prompt, "ConsisIDPickTake")
    takes = result.outputs[takes_id][0]
    assert list(takes.frames) == [7, 8, 9]
    frames, seed, ranking, plot = result.outputs[pick_id]
    assert seed in (7, 8, 9)
    assert torch.equal(frames, takes.frames[seed])
    assert (frames - _single_run(result, prompt, seed, 2)).abs().max().item() == 0.0
    rows = ranking.splitlines()
    assert rows[1].split()[:2] == ["1", str(seed)] and "kept" in rows[1]
    assert sorted(int(r.split()[1]) for r in rows[1:4]) == [7, 8, 9]
    assert rows[4].startswith(f"why: seed {seed} kept")
    assert tuple(plot.shape) == (1, 400, 720, 3)
    assert result.ui[pick_id]["text"] == [ranking]
    server = sys.modules["server"].PromptServer.instance
    ticks = [(p["value"], p["max"]) for p in server.progress if p["node"] == takes_id]
    assert ticks == [(v, 6) for v in range(1, 7)], "one bar over all takes, a tick per step"
    assert [t for t, node in progress_text if node == takes_id] == [
        "take 1 of 3 (seed 7)", "take 2 of 3 (seed 8)", "take 3 of 3 (seed 9)"]


def test_early_pick_finishes_only_keep_takes(comfyui):
    prompt = tiny_prompt(WORKFLOW, steps=4, vae_tiling=False, pick_at=0.5, keep=1)
    result = comfyui.run(prompt)
    takes_id = _only(prompt, "ConsisIDTakes")
    takes = result.outputs[takes_id][0]
    assert len(takes.frames) == 1 and len(takes.preview_scores) == 3
    server = sys.modules["server"].PromptServer.instance
    ticks = [p["value"] for p in server.progress if p["node"] == takes_id]
    assert ticks == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "3 takes x 2 preview steps + 1 take x 4 steps"
    _, seed, ranking, _ = result.outputs[_only(prompt, "ConsisIDPickTake")]
    assert seed == next(iter(takes.frames))
    assert ranking.count("stopped early") == 2


def test_cancel_stops_within_one_step_of_a_later_take(comfyui):
    import comfy.model_management as mm
    import comfy.utils

    prompt = tiny_prompt(WORKFLOW, steps=2)
    seen = []
    hook = comfy.utils.PROGRESS_BAR_HOOK

    def cancel_in_take_two(value, total, preview, node_id=None, **kwargs):
        seen.append(value)
        if value == 3:  # take 2, step 1
            mm.interrupt_current_processing(True)
        return hook(value, total, preview, node_id=node_id, **kwargs)

    comfy.utils.set_progress_bar_global_hook(cancel_in_take_two)
    try:
        with pytest.raises(harness.NodeFailure) as failure:
            comfyui.run(prompt)
    finally:
        comfy.utils.set_progress_bar_global_hook(hook)
        mm.interrupt_current_processing(False)
    assert failure.value.node_id == _only(prompt, "ConsisIDTakes")
    assert isinstance(failure.value.exception, mm.InterruptProcessingException)
    assert seen == [1, 2, 3]


def test_reference_without_a_face_stops_before_any_sampling(comfyui):
    from PIL import Image

    coffee = pytest.importorskip("skimage.data").coffee()
    Image.fromarray(coffee).save(comfyui.root / "input" / "coffee.png")
    prompt = tiny_prompt(WORKFLOW, steps=2)
    load_reference = str(len(prompt) + 100)
    prompt[load_reference] = {"class_type": "LoadImage", "inputs": {"image": "coffee.png"}}
    takes_id = _only(prompt, "ConsisIDTakes")
    prompt[takes_id]["inputs"]["reference"] = [load_reference, 0]
    try:
        with pytest.raises(harness.NodeFailure) as failure:
            comfyui.run(prompt)
    finally:
        (comfyui.root / "input" / "coffee.png").unlink()
    message = str(failure.value.exception)
    assert failure.value.node_id == takes_id
    assert "No face was found in the reference photo" in message and "\n" not in message
    server = sys.modules["server"].PromptServer.instance
    assert not [p for p in server.progress if p["node"] == takes_id], "nothing was sampled"


@pytest.mark.parametrize("change, words", [
    (dict(pick_at=0.5, drop_eval=True), "needs eval_models and reference"),
    (dict(keep=3, pick_at=0.5), "keep must be from 1 to 2"),
])
def test_bad_takes_settings_one_line_before_sampling(comfyui, change, words):
    prompt = tiny_prompt(WORKFLOW, steps=2)
    takes_id = _only(prompt, "ConsisIDTakes")
    drop = change.pop("drop_eval", False)
    prompt[takes_id]["inputs"].update(change)
    if drop:
        del prompt[takes_id]["inputs"]["eval_models"]
    with pytest.raises(harness.NodeFailure) as failure:
        comfyui.run(prompt)
    assert words in str(failure.value.exception) and "\n" not in str(failure.value.exception)
    server = sys.modules["server"].PromptServer.instance
    assert not [p for p in server.progress if p["node"] == takes_id]


def test_take_count_limits_are_validated_by_comfyui(comfyui):
    from consisid_core.takes import MAX_TAKES

    for count in (0, MAX_TAKES + 1):
        prompt = tiny_prompt(WORKFLOW, steps=2, takes=count)
        with pytest.raises(harness.PromptError):
            comfyui.run(prompt)


def test_pick_take_keeps_the_take_the_scores_favour(comfyui, light_eval_models, astronaut):
    """Known videos (the astronaut panned, darkened per take): the kept take is the one with the best (Arc+Cur)/2
    by direct scoring, here the middle one, and the plot and text list all three."""
    from consisid_core.metrics import score_video
    from metrics_fixtures import pan

    from support.pack import pack_module

    base = pan(astronaut, 6, step=6).astype("float32") / 255.0
    frames = {1: torch.from_numpy(base * 0.55), 2: torch.from_numpy(base.copy()), 3: torch.from_numpy(base * 0.75)}
    takes = pack_module("nodes.takes_nodes").Takes(frames, "a woman in a space suit")
    identity = {}
    for seed, video in frames.items():
        s = score_video(light_eval_models, video, astronaut, "a woman in a space suit")
        identity[seed] = (s.facesim_arc + s.facesim_cur) / 2
    expected = max(identity, key=identity.get)
    assert expected == 2, identity  # the data makes the middle take win (neither the first nor the last)
    node = pack_module("nodes").NODES_BY_ID["ConsisIDPickTake"]
    result = node.execute(light_eval_models, takes, torch.from_numpy(astronaut[None] / 255.0).float(), "fixed", 0.0)
    picked, seed, ranking, plot = result.result
    assert seed == expected and torch.equal(picked, frames[expected])
    assert [int(line.split()[1]) for line in ranking.splitlines()[1:4]] == sorted(identity, key=identity.get,
                                                                                 reverse=True)


def test_pick_take_without_eval_models_says_what_to_connect(comfyui):
    from support.pack import pack_module

    node = pack_module("nodes").NODES_BY_ID["ConsisIDPickTake"]
    with pytest.raises(Exception, match="connect a ConsisID Eval Models Loader"):
        node.execute(None, None, torch.zeros(1, 64, 64, 3), "fixed", 0.3)
