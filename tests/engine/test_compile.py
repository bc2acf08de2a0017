"""Compiled blocks: each transformer block compiled (the loop stays eager), equal to eager within 1e-5, with
step caching and model offload; refused with sequential offload. Compiling with inductor takes tens of seconds
on a cold cache, so the three checks share one compiled model."""

from __future__ import annotations

import pytest
import torch

import consisid_core
from consisid_core.runtime.compile_blocks import toolchain_problem
from consisid_core.runtime import RuntimeSettingError, resolve_runtime
from support.engine_inputs import PROMPT, face_image, identity

SETTINGS = dict(height=32, width=48, num_frames=9, num_inference_steps=3, seed=6)


def test_compile_is_refused_with_sequential_offload_and_bad_names():
    with pytest.raises(RuntimeSettingError) as error:
        resolve_runtime(device="cpu", memory_mode="sequential_offload", compile="blocks")
    assert error.value.setting == "compile" and "model_offload" in str(error.value)
    with pytest.raises(RuntimeSettingError):
        resolve_runtime(device="cpu", compile="everything")
    assert resolve_runtime(device="cpu", compile=False).compile == "off"


@pytest.mark.slow
def test_compiled_blocks_equal_eager_with_teacache_and_model_offload(tiny_model):
    problem = toolchain_problem(torch.device("cpu"))
    if problem is not None:
        pytest.skip(f"no compiler toolchain: {problem}")
    id_cond, hidden = identity()
    inputs = dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, **SETTINGS)
    eager = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)
    compiled = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32, compile="blocks",
                                         memory_mode="model_offload")
    blocks = compiled.transformer.transformer_blocks
    assert all(getattr(b, "_compiled_call_impl", None) is not None for b in blocks)  # each block, in place
    assert type(compiled.transformer.transformer_blocks) is type(eager.transformer.transformer_blocks)
    expected = eager.generate(PROMPT, **inputs)
    got = compiled.generate(PROMPT, **inputs)
    assert (got - expected).abs().max().item() <= 1e-5
    cache_e, cache_c = consisid_core.TeaCache(10.0), consisid_core.TeaCache(10.0)
    expected = eager.generate(PROMPT, cache=cache_e, **inputs)
    got = compiled.generate(PROMPT, cache=cache_c, **inputs)
    assert cache_c.stats == cache_e.stats and cache_c.stats["skipped"] == 1
    assert (got - expected).abs().max().item() <= 1e-5
