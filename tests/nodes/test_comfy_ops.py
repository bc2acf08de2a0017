"""Our models as ComfyUI models (nodes/comfy_ops.py): every tensor is either in a ComfyUI casting op or behind a
cast-on-use hook, so no partial load can leave one on the wrong device.

The CPU-visible signal: the models are adopted for the `meta` device (standing in for the GPU) with every op in
ComfyUI's lowvram state (`comfy_cast_weights`), weights left in RAM, inputs on `meta`. A weight that is not
brought to the compute device makes the forward fail with a device mismatch; afterwards every weight is back
in RAM as the very same tensor (nothing copied back, nothing leaked)."""

from __future__ import annotations

import pytest
import torch

import comfy_stub
import consisid_core
from support.engine_inputs import identity
from support.pack import pack_module

META = torch.device("meta")


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    comfy_stub.activate(tmp_path_factory.mktemp("comfy_ops"))
    yield pack_module("nodes.comfy_ops")
    comfy_stub.deactivate()


@pytest.fixture(scope="module")
def engine(tiny_model, ops):
    return consisid_core.load_engine(tiny_model, device="cpu", dtype="fp32", managed=True)


def _lowvram(model: torch.nn.Module, ops) -> int:
    """What ComfyUI's partial load does to layers it leaves in RAM."""
    count = 0
    for module in model.modules():
        if ops.is_comfy_op(module):
            module.comfy_cast_weights = True
            count += 1
    return count


def _host_tensors(model):
    return {f"{n}.{t}": (value, value.device) for n, m in model.named_modules() for t, value, _ in
            ((t, v, p) for t, v, p in pack_module("nodes.comfy_ops").own_tensors(m))}


def _check_restored(before, model):
    after = _host_tensors(model)
    assert after.keys() == before.keys()
    for key, (tensor, device) in before.items():
        assert after[key][0] is tensor and after[key][1] == device, f"{key} was not put back"


def test_every_tensor_is_reachable_by_an_op_or_a_hook(engine, ops):
    for model in (engine.text_encoder, engine.transformer, engine.vae):
        ops.adopt(model, META)
        assert ops.uncovered(model) == []
        plain = [n for n, m in model.named_modules() if type(m) in (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv3d,
                                                                      torch.nn.GroupNorm, torch.nn.LayerNorm,
                                                                      torch.nn.Embedding)]
        assert plain == [], f"plain torch layers left: {plain[:5]}"
    hooked = ops.cast_on_use_modules(engine.transformer)
    assert "local_facial_extractor" in hooked, "the perceiver latents sit on a non-leaf module"


def test_t5_runs_on_the_compute_device_with_weights_left_in_ram(engine, ops):
    t5 = ops.adopt(engine.text_encoder, META)
    assert _lowvram(t5, ops) > 0
    before = _host_tensors(t5)
    ids = torch.zeros(1, engine.info.text_len, dtype=torch.long, device=META)
    x = t5.shared(ids)  # (the whole T5 calls .item() on its position buckets, which meta tensors cannot do)
    x = t5.encoder.block[0].layer[-1](x)  # its norm (a hooked T5LayerNorm) and feed-forward (ops)
    out = t5.encoder.final_layer_norm(x)
    assert out.device == META
    _check_restored(before, t5)


def test_face_token_extractor_runs_on_the_compute_device(engine, ops):
    transformer = ops.adopt(engine.transformer, META)
    _lowvram(transformer, ops)
    before = _host_tensors(transformer)
    id_cond, hidden = identity()
    tokens = transformer.local_facial_extractor(id_cond.to(META), [h.to(META) for h in hidden])
    assert tokens.device == META
    _check_restored(before, transformer)


def test_vae_encoder_runs_on_the_compute_device(engine, ops):
    vae = ops.adopt(engine.vae, META)
    _lowvram(vae, ops)
    before = _host_tensors(vae)
    out = vae.encoder(torch.zeros(1, 3, 1, 32, 48, device=META))
    out = out[0] if isinstance(out, tuple) else out
    assert out.device == META
    _check_restored(before, vae)


def test_a_call_that_raised_puts_the_host_tensors_back_at_the_next_call(ops):
    norm = torch.nn.Module()
    norm.weight = torch.nn.Parameter(torch.ones(4))
    norm.forward = lambda x: x * norm.weight
    ops.adopt(norm, META)
    host = norm.weight
    with pytest.raises(RuntimeError):
        norm(torch.zeros(3, device="cpu"))  # cpu input against a meta copy: the forward fails mid-call
    assert norm(torch.zeros(4, device=META)).device == META
    assert norm.weight is host, "the stand-in copy of the failed call was dropped, the host tensor is back"
