"""ConsisID TeaCache node: its cache reaches the Sampler, gives the engine's cached video and logs computed/skipped."""

from __future__ import annotations

import logging

import pytest
import torch

from comfy_stub import harness
from support.node_graph import nodes_of, tiny_prompt


def _with_cache(prompt: dict, **inputs) -> dict:
    settings = {"threshold": 0.2, "mode": "fixed", "start_step": 0, "end_step": 0, "offload_residuals": False, **inputs}
    prompt["tc"] = {"class_type": "ConsisIDTeaCache", "inputs": settings}
    prompt[nodes_of(prompt, "ConsisIDSampler")[0]]["inputs"]["cache"] = ["tc", 0]
    return prompt


def test_cache_node_equals_engine_generate_with_the_same_cache(comfyui, caplog):
    import consisid_core

    prompt = _with_cache(tiny_prompt(seed=1234, steps=5, vae_tiling=False), start_step=2)
    with caplog.at_level(logging.INFO, logger="ConsisID"):
        result = comfyui.run(prompt)
    frames = result.outputs[nodes_of(prompt, "ConsisIDDecode")[0]][0]
    cache = result.outputs["tc"][0]
    assert cache.stats["skipped"] > 0 and all(i >= 2 for i in cache.stats["skipped_steps"])
    assert any("ConsisID Sampler" in r.message and "steps computed" in r.message for r in caplog.records)

    engine = result.outputs[nodes_of(prompt, "ConsisIDModelLoader")[0]][0].get()
    aligned = result.outputs[nodes_of(prompt, "ConsisIDFaceCropAlign")[0]][0][0]
    local = result.outputs[nodes_of(prompt, "ConsisIDLocalExtractor")[0]][0]
    text = prompt[nodes_of(prompt, "ConsisIDTextEncode")[0]]["inputs"]
    common = dict(image=(aligned.numpy() * 255).round().astype("uint8"), id_cond=local.id_cond,
                  id_vit_hidden=local.id_vit_hidden, height=32, width=48, num_frames=9, num_inference_steps=5,
                  guidance_scale=6.0, seed=1234)
    expected = engine.generate(text["prompt"], text["negative_prompt"], cache=consisid_core.TeaCache(0.2, start_step=2),
                               **common)
    assert torch.equal(frames, expected)
    assert not torch.equal(frames, engine.generate(text["prompt"], text["negative_prompt"], **common))


def test_bad_cache_setting_names_the_node(comfyui):
    prompt = _with_cache(tiny_prompt(steps=1), mode="reference", start_step=3)
    with pytest.raises(harness.NodeFailure) as failure:
        comfyui.run(prompt)
    assert failure.value.node_id == "tc"
    assert "ConsisID TeaCache (ConsisIDTeaCache)" in str(failure.value.exception)
