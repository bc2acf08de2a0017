"""What each stage computes in, seen on the CPU: faults a GPU run would hide in speed or small numeric drift.

- CFG is combined in float32 from the transformer's bf16 outputs (as the reference: `.float()` before the combine).
- T5 runs in the engine's dtype (the reference's pipeline dtype), not silently in fp32.
- The VAE decodes in the engine's dtype, not silently in fp32.
- A fixed-mode TeaCache keeps no tensors once a generation ends (the residual of a real run is hundreds of MB).
- An offloaded TeaCache residual is brought to the hidden states' device (a meta "device" stands in for the GPU).
- Engine-level Cancel stops the denoising within one transformer call, and the next run is unaffected.
"""

from __future__ import annotations

import pytest
import torch

import consisid_core
from consisid_core.cancel import Cancelled
from consisid_core.engine import denoise as denoise_module
from consisid_core.engine.teacache import TeaCache, TeaCacheRun, _State
from support.engine_inputs import PROMPT, face_image, identity

SETTINGS = dict(height=32, width=48, num_frames=9, num_inference_steps=3, guidance_scale=6.0, seed=5)


@pytest.fixture(scope="module")
def bf16_engine(tiny_model):
    return consisid_core.load_engine(tiny_model, device="cpu", dtype="bf16")


@pytest.fixture(scope="module")
def engine(tiny_model):
    return consisid_core.load_engine(tiny_model, device="cpu", dtype="fp32")


def _generate(engine, **overrides):
    id_cond, hidden = identity()
    return engine.generate(PROMPT, image=face_image(), id_cond=id_cond, id_vit_hidden=hidden,
                           **{**SETTINGS, **overrides})


def test_cfg_is_combined_in_float32_from_the_bf16_branches(bf16_engine, monkeypatch):
    outputs, combined = [], []
    original_forward = denoise_module.transformer_forward

    def forward(*args, **kwargs):
        out = original_forward(*args, **kwargs)
        outputs.append(out.detach().clone())
        return out

    monkeypatch.setattr(denoise_module, "transformer_forward", forward)
    from diffusers import CogVideoXDPMScheduler

    original_step = CogVideoXDPMScheduler.step

    def step(self, model_output, *args, **kwargs):
        combined.append(model_output.detach().clone())
        return original_step(self, model_output, *args, **kwargs)

    monkeypatch.setattr(CogVideoXDPMScheduler, "step", step)
    _generate(bf16_engine)
    assert len(outputs) == len(combined) == SETTINGS["num_inference_steps"]
    for raw, got in zip(outputs, combined):
        assert raw.dtype == torch.bfloat16, "the transformer runs in the engine's dtype"
        assert got.dtype == torch.float32, "the scheduler gets a float32 prediction"
        uncond, cond = raw.float().chunk(2)
        expected = uncond + SETTINGS["guidance_scale"] * (cond - uncond)
        assert torch.equal(got, expected), "CFG combined in float32 from the bf16 branches"


def test_t5_and_vae_run_in_the_engine_dtype(bf16_engine):
    seen: dict[str, list[torch.dtype]] = {"t5": [], "decode": [], "encode": []}
    t5_block = bf16_engine.text_encoder.encoder.block[0]
    handles = [
        t5_block.register_forward_hook(lambda m, a, out: seen["t5"].append(out[0].dtype)),
        bf16_engine.vae.decoder.register_forward_pre_hook(lambda m, a: seen["decode"].append(a[0].dtype)),
        bf16_engine.vae.encoder.register_forward_pre_hook(lambda m, a: seen["encode"].append(a[0].dtype)),
    ]
    try:
        frames = _generate(bf16_engine, num_inference_steps=1)
    finally:
        for handle in handles:
            handle.remove()
    assert next(bf16_engine.text_encoder.parameters()).dtype == torch.bfloat16
    assert next(bf16_engine.vae.parameters()).dtype == torch.bfloat16
    assert seen["t5"] and set(seen["t5"]) == {torch.bfloat16}, f"T5 activations: {seen['t5']}"
    assert seen["encode"] and set(seen["encode"]) == {torch.bfloat16}, f"VAE encoder input: {seen['encode']}"
    assert seen["decode"] and set(seen["decode"]) == {torch.bfloat16}, f"VAE decoder input: {seen['decode']}"
    assert frames.dtype == torch.float32, "frames leave the engine as float32 in [0, 1]"


def _tensors_in(obj, seen=None) -> list[torch.Tensor]:
    """Every tensor reachable from an object's attributes (dicts, lists, dataclasses)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return [obj]
    children = []
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif hasattr(obj, "__dict__"):
        children = list(vars(obj).values())
    return [t for child in children for t in _tensors_in(child, seen)]


def test_fixed_teacache_keeps_no_tensors_after_a_generation(engine):
    cache = TeaCache(0.3)
    _generate(engine, num_inference_steps=6, cache=cache)
    assert cache.stats["skipped"] > 0, "the test needs a run that used the cache"
    assert _tensors_in(cache) == [], "a finished generation leaves no residuals alive in the TeaCache"


def test_offloaded_residual_is_brought_to_the_hidden_states_device():
    cache = TeaCache(0.2, offload=True)
    run = TeaCacheRun(cache, _State(), 4)
    run.store(torch.ones(1, 3, 4), torch.ones(1, 2, 4))
    assert run.state.residual.device.type == "cpu", "offload keeps the residual on the CPU"
    hidden, text = torch.zeros(1, 3, 4, device="meta"), torch.zeros(1, 2, 4, device="meta")  # the "GPU"
    new_hidden, new_text = run.apply(hidden, text)
    assert new_hidden.device.type == "meta" and new_text.device.type == "meta"


def test_engine_cancel_stops_the_denoising_at_the_next_transformer_call(engine, monkeypatch):
    id_cond, hidden = identity()
    text = engine.encode_text(PROMPT, "")
    global_cond = engine.encode_global(face_image(), height=32, width=48)
    local = engine.encode_local(id_cond, hidden)
    settings = dict(num_frames=9, num_inference_steps=6, seed=5)
    baseline = engine.denoise(text, global_cond, local, **settings).latents
    forwards, checks = [], []
    original_forward = denoise_module.transformer_forward
    monkeypatch.setattr(denoise_module, "transformer_forward",
                        lambda *a, **k: forwards.append(1) or original_forward(*a, **k))
    engine.should_cancel = lambda: checks.append(1) or len(checks) > 2  # asks to stop at the third check
    try:
        with pytest.raises(Cancelled):
            engine.denoise(text, global_cond, local, **settings)
    finally:
        engine.should_cancel = None
    assert len(checks) == 3 and len(forwards) == 3, "checked at every transformer call; stopped in the third"
    monkeypatch.setattr(denoise_module, "transformer_forward", original_forward)
    assert torch.equal(engine.denoise(text, global_cond, local, **settings).latents, baseline), "next run clean"
