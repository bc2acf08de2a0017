"""Speed nodes: the TeaCache node reaches the Sampler (same video as the engine, logs computed/skipped); the DiT
Loader's fp8 weight storage and compile options."""

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
    from consisid_core.batch.teacache_override import teacache_stats

    assert teacache_stats({"outputs": result.ui}) == cache.stats  # what the batch records for the job

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


def test_dit_loader_stores_the_blocks_in_fp8_and_refuses_compile_with_sequential_offload(comfyui):
    prompt = tiny_prompt(steps=1)
    loader = nodes_of(prompt, "ConsisIDModelLoader")[0]
    prompt[loader]["inputs"]["weight_dtype"] = "fp8_e4m3fn"
    result = comfyui.run(prompt)
    engine = result.outputs[loader][0].get()
    assert engine.transformer.transformer_blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert tuple(result.outputs[nodes_of(prompt, "ConsisIDDecode")[0]][0].shape) == (9, 32, 48, 3)

    prompt = tiny_prompt(steps=1, memory_mode="sequential_offload")
    prompt[loader]["inputs"]["compile"] = "blocks"
    with pytest.raises(harness.NodeFailure) as failure:
        comfyui.run(prompt)
    assert failure.value.node_id == loader and "sequential_offload" in str(failure.value.exception)
