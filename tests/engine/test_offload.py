"""Memory modes move weights host -> device only: one host copy per weight, device copies dropped after use.

There is no GPU here, so two stand-ins make the moves observable on the CPU:
- the `meta` device as the accelerator for plain modules: a weight that is not on it during forward, or a
  meta weight copied back to the host (impossible: meta holds no data), fails loudly; a torch function mode
  counts every device -> host copy of a weight;
- for a whole tiny engine, the one copy function is patched to clone ("a device copy" with its own storage),
  so the engine still computes and the host copies' storage can be checked across two generations.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import consisid_core
from consisid_core.engine import offload
from consisid_core.engine.offload import Placement, host_tensors
from support.engine_inputs import PROMPT, face_image, identity

META = torch.device("meta")


class DeviceToHost(TorchFunctionMode):
    """Counts copies of parameters (weights, not activations) from a non-CPU device to the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in ("to", "cpu", "copy_") and args and isinstance(args[0], torch.Tensor):
            src = args[1] if name == "copy_" else args[0]
            target = kwargs.get("device", args[1] if name == "to" and len(args) > 1 else None)
            to_cpu = name == "cpu" or (name == "copy_" and args[0].device.type == "cpu") or (
                isinstance(target, (str, torch.device)) and torch.device(target).type == "cpu")
            if to_cpu and isinstance(src, torch.Tensor) and src.device.type != "cpu" and isinstance(src, nn.Parameter):
                self.count += 1
        return func(*args, **kwargs)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 2))


def _watch_devices(model: nn.Module) -> list[tuple[str, set[str]]]:
    """Record the devices of each layer's weights while it runs (hooks added after the placement's)."""
    seen = []
    for name, module in model.named_modules():
        if list(module.parameters(recurse=False)):
            module.register_forward_pre_hook(
                lambda m, args, name=name: seen.append((name, {p.device.type for p in m.parameters(recurse=False)})))
    return seen


def _ptrs(model: nn.Module) -> dict[str, int]:
    return {name: p.data_ptr() for name, p in model.named_parameters()}


def test_sequential_offload_streams_layers_in_and_drops_them_after():
    model = _model()
    placement = Placement(META, "sequential_offload")
    placement.install(model)
    host = _ptrs(model)
    seen = _watch_devices(model)
    for _ in range(2):  # two generations
        with placement.use(model), torch.inference_mode(), DeviceToHost() as d2h:
            model(torch.zeros(1, 4, device=META))
            assert all(p.device.type == "cpu" for p in model.parameters()), "only the running layer is on the device"
        assert d2h.count == 0
    assert seen == [(n, {"meta"}) for n in ("0", "2", "3")] * 2, "each layer on the device while it runs"
    assert _ptrs(model) == host, "the host copies keep their storage"
    placement.release(model)
    seen.clear()
    model(torch.zeros(1, 4))
    assert seen == [(n, {"cpu"}) for n in ("0", "2", "3")], "released models carry no streaming hooks"


def test_sequential_offload_drops_device_copies_when_a_layer_fails():
    model = _model()
    placement = Placement(META, "sequential_offload")
    with pytest.raises(RuntimeError):
        with placement.use(model):
            model(torch.zeros(1, 5, device=META))  # wrong width: the first layer fails
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_model_offload_moves_whole_model_in_and_drops_it_after():
    model, other = _model(), _model()
    placement = Placement(META, "model_offload")
    placement.install(model, other)
    host = _ptrs(model)
    for _ in range(2):
        with DeviceToHost() as d2h:
            with placement.use(model):
                assert {p.device.type for p in model.parameters()} == {"meta"}
                assert {p.device.type for p in other.parameters()} == {"cpu"}, "only the stage's model moves"
                assert placement.device_bytes(model) == offload.module_bytes(model)
        assert d2h.count == 0
    assert {p.device.type for p in model.parameters()} == {"cpu"} and _ptrs(model) == host


def test_model_offload_leaves_the_device_even_when_the_stage_fails():
    model = _model()
    placement = Placement(META, "model_offload")
    with pytest.raises(RuntimeError):
        with placement.use(model):
            raise RuntimeError("out of memory")
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_use_part_moves_only_the_face_extractor():
    dit, lfe = _model(), _model()
    dit.add_module("lfe", lfe)
    placement = Placement(META, "model_offload")
    with placement.use_part(dit, lfe):
        assert {p.device.type for p in lfe.parameters()} == {"meta"}
        assert {p.device.type for p in dit[0].parameters()} == {"cpu"}
    assert {p.device.type for p in dit.parameters()} == {"cpu"}


def test_none_with_host_copies_loads_once_and_unloads_without_copying_back():
    model = _model()
    placement = Placement(META, "none", host_copies=True)
    host = _ptrs(model)
    placement.install(model)
    with placement.use(model):
        assert {p.device.type for p in model.parameters()} == {"meta"}
    assert {p.device.type for p in model.parameters()} == {"meta"}, "mode none keeps models on the device"
    assert placement.unload(model) == offload.module_bytes(model)
    assert _ptrs(model) == host


def test_before_use_hook_sees_each_stage():
    model = _model()
    placement = Placement(META, "model_offload")
    asked = []
    placement.before_use = lambda models: asked.append(models)
    with placement.use(model):
        pass
    assert asked == [(model,)]


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="memory mode must be one of"):
        Placement(META, "turbo")


# ---- a whole engine on a pretend accelerator ----------------------------------------------------------

@pytest.fixture()
def pretend_accelerator(monkeypatch):
    """Device copies are clones; 'on the device' means 'is one of those clones'."""
    copies: dict[int, int] = {}

    def copy_to(tensor, device):
        clone = tensor.clone()
        copies[clone.data_ptr()] = copies.get(clone.data_ptr(), 0) + 1
        return clone

    monkeypatch.setattr(offload, "_copy_to", copy_to)
    monkeypatch.setattr(offload, "_on", lambda tensor, device: tensor.data_ptr() in copies)
    return copies


@pytest.mark.parametrize("mode", ["model_offload", "sequential_offload"])
def test_offloaded_engine_keeps_host_storage_across_generations(tiny_model, pretend_accelerator, mode):
    reference = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)
    engine = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32, memory_mode=mode)
    engine.placement.host_copies = True
    models = (engine.text_encoder, engine.transformer, engine.vae)
    before = host_tensors(models)
    id_cond, hidden = identity()
    kwargs = dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, seed=9, height=32, width=48, num_frames=9,
                  num_inference_steps=2, guidance_scale=6.0)
    expected = reference.generate(PROMPT, **kwargs)
    for _ in range(2):
        pretend_accelerator.clear()
        assert torch.equal(engine.generate(PROMPT, **kwargs), expected)
        copied = sum(pretend_accelerator.values())
        weights = sum(1 for m in models for _ in m.parameters())
        assert copied >= weights, f"every weight is copied to the device at least once ({copied} < {weights})"
        assert host_tensors(models) == before, "host copies keep their storage (no copy made back)"
        assert all(engine.placement.device_bytes(m) == 0 for m in models), "device copies are dropped after use"


def test_sequential_offload_streams_layers_added_after_install():
    """Modules added later (LoRA adapters wrap the linears) are streamed too, from the next stage on."""
    model = _model()
    placement = Placement(META, "sequential_offload")
    placement.install(model)
    model.add_module("extra", nn.Linear(2, 2))
    with placement.use(model):
        seen = _watch_devices(model.extra)  # (after the placement's own hooks)
        model.extra(torch.zeros(1, 2, device=META))
    assert seen == [("", {"meta"})]
    assert {p.device.type for p in model.parameters()} == {"cpu"}
