"""Memory modes through diffusers' hooks: weights go host -> device only, the host copies keep their storage,
sequential offload prefetches in the order layers really run, and managed placements never touch a tensor.

No GPU here: `test_offload_fakes.pretend_cuda` plays CUDA's streams and cudaHostRegister; device copies are
clones with their own storage, so a layer computing from a host weight, or a host copy replaced (copied back),
shows.
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

import consisid_core
from consisid_core.runtime import offload, offload_groups
from consisid_core.runtime.offload import Placement, host_tensors
from engine.test_offload_fakes import pretend_cuda
from support.engine_inputs import PROMPT, face_image, identity

DEV = torch.device("cpu")  # with pretend_cuda: copies are clones


class Computes(TorchFunctionMode):
    """Records, as each layer computes, whether its weight is a device copy and how many copies were made so far."""

    def __init__(self, spy) -> None:
        super().__init__()
        self.spy, self.runs = spy, []
        self.copied_before: list[int] = []  # how many copies had been made when each layer computed

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (F.linear, F.layer_norm):
            weight = args[1] if func is F.linear else (kwargs or {}).get("weight", args[2] if len(args) > 2 else None)
            self.runs.append("device" if weight.data_ptr() in self.spy.clones else "host")
            self.copied_before.append(len(self.spy.transfers))
        return func(*args, **(kwargs or {}))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 2))


class Shuffled(nn.Module):
    """Layers registered in one order and run in another (as the DiT's face modules, T5's and the VAE's are)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c, self.d = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)
        self.order = ("c", "a", "d", "b")

    def run(self, x: torch.Tensor) -> torch.Tensor:  # the engine calls parts, never the top forward
        for name in self.order:
            x = getattr(self, name)(x)
        return x


def _ptrs(model: nn.Module) -> dict[str, int]:
    return {name: p.data_ptr() for name, p in model.named_parameters()}


def _weight_ids(module: nn.Module) -> set[int]:
    return {id(p) for p in module.parameters()}


@pytest.fixture()
def cuda(monkeypatch):
    return pretend_cuda(monkeypatch)


def test_sequential_offload_streams_layers_in_and_drops_them_after(cuda):
    model = _model()
    placement = Placement(DEV, "sequential_offload")
    placement.install(model)
    host = _ptrs(model)
    for _ in range(2):  # two generations
        with placement.use(model), torch.inference_mode(), Computes(cuda) as seen:
            model(torch.zeros(1, 4, device=DEV))
        assert seen.runs == ["device"] * 3, "each layer's weights are on the device while it computes"
        assert placement.device_bytes(model) == 0, "nothing stays on the device after"
    assert cuda.recorded > 0, "device copies are recorded on the compute stream (record_stream)"
    assert _ptrs(model) == host, "the host copies keep their storage"
    placement.release(model)
    with Computes(cuda) as seen:
        model(torch.zeros(1, 4))
    assert seen.runs == ["host"] * 3, "released models carry no offloading hooks"
    assert cuda.registered == {}, "release unpins"


def test_sequential_offload_prefetches_in_the_recorded_order_not_the_registration_order(cuda):
    model = Shuffled()
    placement = Placement(DEV, "sequential_offload")
    with placement.use(model):  # first stage: diffusers records the order the layers ran in
        model.run(torch.zeros(1, 4, device=DEV))
    chain = {}
    for group in offload_groups.layer_groups(model):
        hook = group.modules[0]._diffusers_hook.get_hook(offload_groups.GROUP_HOOK) if group.modules else None
        if hook is not None and hook.next_group is not None:
            chain[id(group.modules[0])] = id(hook.next_group.modules[0])
    named = {id(getattr(model, n)): n for n in "abcd"}
    assert {named[k]: named[v] for k, v in chain.items()} == {"c": "a", "a": "d", "d": "b"}
    cuda.transfers.clear()
    with placement.use(model), Computes(cuda) as seen:
        model.run(torch.zeros(1, 4, device=DEV))
    order = [getattr(model, n) for n in model.order]
    firsts = [next(i for i, t in enumerate(cuda.transfers) if t in _weight_ids(m)) for m in order]
    assert firsts == sorted(firsts), "copied in execution order"
    for k in range(len(order) - 1):  # layer k+1 is already being copied when layer k computes
        assert seen.copied_before[k] > firsts[k + 1], f"{model.order[k + 1]} was not prefetched during {model.order[k]}"
    assert len(cuda.transfers) == 2 * len(order), "each weight copied once (a missed prefetch would copy twice)"


def test_sequential_offload_drops_the_running_and_the_prefetched_layer_when_a_stage_fails(cuda):
    model = Shuffled()
    placement = Placement(DEV, "sequential_offload")
    with placement.use(model):
        model.run(torch.zeros(1, 4, device=DEV))
    with pytest.raises(RuntimeError):
        with placement.use(model):
            model.c(torch.zeros(1, 4, device=DEV))  # c runs and prefetches a ...
            assert model.a.weight.data_ptr() in cuda.clones
            raise RuntimeError("cancelled")  # ... which never runs
    assert placement.device_bytes(model) == 0, "no device weight left behind"
    with placement.use(model), Computes(cuda) as seen:
        model.run(torch.zeros(1, 4, device=DEV))
    assert seen.runs == ["device"] * 4


def test_model_offload_moves_whole_model_in_and_drops_it_after(cuda):
    model, other = _model(), _model()
    placement = Placement(DEV, "model_offload")
    placement.install(model, other)
    host = _ptrs(model)
    for _ in range(2):
        with placement.use(model):
            assert placement.device_bytes(model) == offload.module_bytes(model)
            assert placement.device_bytes(other) == 0, "only the stage's model moves"
    assert placement.device_bytes(model) == 0 and _ptrs(model) == host
    assert cuda.syncs >= 2, "the stage waits for its model's copies"


def test_model_offload_leaves_the_device_even_when_the_stage_fails(cuda):
    model = _model()
    placement = Placement(DEV, "model_offload")
    with pytest.raises(RuntimeError):
        with placement.use(model):
            raise RuntimeError("out of memory")
    assert placement.device_bytes(model) == 0


def test_use_part_moves_only_the_face_extractor(cuda):
    dit, lfe = _model(), _model()
    dit.add_module("lfe", lfe)
    placement = Placement(DEV, "model_offload")
    with placement.use_part(dit, lfe):
        assert placement.device_bytes(dit) == placement.device_bytes(lfe) == offload.module_bytes(lfe)
    assert placement.device_bytes(dit) == 0


def test_none_with_host_copies_loads_once_and_unloads_without_copying_back(cuda):
    model = _model()
    placement = Placement(DEV, "none", host_copies=True)
    host = _ptrs(model)
    placement.install(model)
    copies = len(cuda.transfers)
    with placement.use(model):
        pass
    assert placement.device_bytes(model) == offload.module_bytes(model), "mode none keeps models on the device"
    assert len(cuda.transfers) == copies, "loaded once, not again per stage"
    assert placement.unload(model) == offload.module_bytes(model)
    assert _ptrs(model) == host


@pytest.mark.parametrize("mode", ["none", "model_offload", "sequential_offload"])
def test_managed_placement_never_moves_copies_or_pins(cuda, mode):
    dit, lfe = _model(), _model()
    dit.add_module("lfe", lfe)
    placement = Placement(DEV, mode, host_copies=True, managed=True)
    asked = []
    placement.before_use = lambda models, memory_required: asked.append((models, memory_required))
    host = _ptrs(dit)
    placement.install(dit)
    with placement.use(dit, memory_required=123):
        assert placement.device_bytes(dit) == 0
    with placement.use_part(dit, lfe, memory_required=7):
        pass
    assert placement.load(dit) == 0 and placement.unload(dit) == 0
    placement.release(dit)
    assert asked == [((dit,), 123), ((lfe,), 7)]
    assert _ptrs(dit) == host
    assert cuda.transfers == [] and cuda.register_calls == [], "no copy, no pin"
    assert not any(hasattr(m, "_diffusers_hook") for m in dit.modules()), "no hooks"


def test_before_use_hook_sees_each_stage_with_its_memory_estimate(cuda):
    model = _model()
    placement = Placement(DEV, "model_offload")
    asked = []
    placement.before_use = lambda models, memory_required: asked.append((models, memory_required))
    with placement.use(model):
        pass
    with placement.use(model, memory_required=2**20):
        pass
    assert asked == [((model,), 0), ((model,), 2**20)]


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="memory mode must be one of"):
        Placement(DEV, "turbo")


def test_sequential_offload_streams_layers_added_after_install(cuda):
    """Modules added later (LoRA adapters wrap the linears) are streamed too, from the next stage on."""
    model = _model()
    placement = Placement(DEV, "sequential_offload")
    placement.install(model)
    model.add_module("extra", nn.Linear(2, 2))
    with placement.use(model), Computes(cuda) as seen:
        model.extra(torch.zeros(1, 2, device=DEV))
    assert seen.runs == ["device"]
    assert placement.device_bytes(model) == 0
    assert cuda.covers(model.extra.weight), "the new layer's host weights are pinned before it streams"


# ---- a whole engine -------------------------------------------------------------------------------------

KWARGS = dict(seed=9, height=32, width=48, num_frames=9, num_inference_steps=2, guidance_scale=6.0)


def _generate(engine, **extra) -> torch.Tensor:
    id_cond, hidden = identity()
    return engine.generate(PROMPT, image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, **KWARGS, **extra)


def _same_frames(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Equal up to float32 summation order: the pretend GPU's copies are fresh allocations, and on some CPUs (seen
    on AMD EPYC) their alignment changes the SIMD reduction order by a few ulps; a wrong weight or a skipped stage
    differs by far more."""
    return got.shape == want.shape and float((got - want).abs().max()) <= 1e-5


def _cancel(step, total, latents):
    raise RuntimeError("cancelled during the first step")


@pytest.fixture(scope="module")
def expected(tiny_model):
    return _generate(consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32))


@pytest.mark.parametrize("mode", ["model_offload", "sequential_offload"])
def test_every_mode_gives_the_frames_of_mode_none(tiny_model, expected, mode):
    """On the CPU diffusers' hooks run without streams: they must not change a single value, nor leave state
    behind when a generation fails half way (the next one equals a fresh one)."""
    engine = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32, memory_mode=mode)
    assert torch.equal(_generate(engine), expected)

    with pytest.raises(RuntimeError, match="cancelled"):
        _generate(engine, callback=_cancel)
    assert torch.equal(_generate(engine), expected)


def _watch_parts(entries, placement, models) -> tuple[list[set[int]], list[int]]:
    """After each part runs: which models hold device copies, and how many bytes are on the device."""
    seen: list[set[int]] = []
    held_now: list[int] = []

    def record(module, args, out) -> None:
        seen.append({i for i, x in enumerate(models) if placement.device_bytes(x)})
        held_now.append(sum(placement.device_bytes(x) for x in models))

    for entry in entries:
        entry.register_forward_hook(record)
    return seen, held_now


@pytest.mark.parametrize("mode", ["model_offload", "sequential_offload", "none"])
def test_offloaded_engine_on_a_pretend_gpu_pins_exactly_and_unpins_on_release_and_drop(tiny_model, expected,
                                                                                        monkeypatch, mode):
    cuda = pretend_cuda(monkeypatch)
    engine = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32, memory_mode=mode)
    if mode == "none":
        engine.placement.host_copies = True  # the face networks' placement
    models = (engine.text_encoder, engine.transformer, engine.vae)
    before = host_tensors(models)
    entries = (engine.text_encoder.encoder, engine.transformer.patch_embed, engine.transformer.local_facial_extractor,
               engine.vae.encoder, engine.vae.decoder)  # parts the engine calls (it never calls the DiT's forward)
    seen, held_now = _watch_parts(entries, engine.placement, models)
    for _ in range(2):
        assert _same_frames(_generate(engine), expected), "device copies compute the same frames"
        assert host_tensors(models) == before, "host copies keep their storage (no copy made back)"
        if mode != "none":
            assert all(engine.placement.device_bytes(m) == 0 for m in models), "device copies dropped after use"
    if mode != "none":  # a generation failing mid-stage (prefetched layers pending) leaves nothing behind
        with pytest.raises(RuntimeError, match="cancelled"):
            _generate(engine, callback=_cancel)
        assert all(engine.placement.device_bytes(m) == 0 for m in models), "no stale device weights"
        assert _same_frames(_generate(engine), expected), "the next run equals a fresh one"
    assert len(seen) >= 2 * len(entries)
    if mode == "model_offload":
        assert {len(s) for s in seen} == {1}, "only the stage's model is on the device"
    elif mode == "sequential_offload":  # after a part ran, at most the prefetched next layer is on the device
        largest = max(sum(t.nbytes for t in offload_groups.group_tensors(g))
                      for m in models for g in offload_groups.layer_groups(m))
        assert max(held_now) <= largest, f"{max(held_now)} bytes on the device between layers"
    stats = engine.placement.pinned()
    copies = offload_groups.host_copies(models)
    hosts = [copies.get(id(t), t) for m in models for t in offload_groups.own_tensors(m)]
    held = sum(s.nbytes() for s in {t.untyped_storage().data_ptr(): t.untyped_storage() for t in hosts}.values())
    assert stats.held == held and stats.pinned == sum(cuda.registered.values())
    assert held <= stats.pinned <= 1.1 * held, f"pinned {stats.pinned} for {held} bytes held"
    engine.release()
    assert cuda.registered == {}, "release unregisters every range"
    assert _same_frames(_generate(engine), expected), "released engines come back on next use"
    assert cuda.registered, "pinned again"
    ref = weakref.ref(engine.placement)
    del engine, models, entries
    gc.collect()
    assert ref() is None and cuda.registered == {}, "dropping the engine unregisters every range"
    assert sorted(cuda.unregister_calls) == sorted(p for p, _ in cuda.register_calls)


def test_sequential_offload_prefetches_the_engine_layers_in_the_order_they_ran(tiny_model, monkeypatch):
    """From the second generation on, a layer finds its weights already copied (prefetched by the layer that ran
    before it) except where a stage starts and where diffusers' own rules load a group itself (buffer-only
    groups; a norm called twice in a row)."""
    from diffusers.hooks import group_offloading

    cuda = pretend_cuda(monkeypatch)
    runs: list[tuple[nn.Module, bool]] = []
    real = group_offloading.GroupOffloadingHook.pre_forward

    def pre_forward(self, module, *args, **kwargs):  # (patched before the hooks are made: they bind it)
        if self.group.onload_leader in (module, None):
            tensors = list(offload_groups.group_tensors(self.group))
            if tensors:
                runs.append((module, all(t.data_ptr() in cuda.clones for t in tensors)))
        return real(self, module, *args, **kwargs)

    monkeypatch.setattr(group_offloading.GroupOffloadingHook, "pre_forward", pre_forward)
    engine = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32, memory_mode="sequential_offload")
    _generate(engine)
    assert all(state.finished for state in engine.placement._streamers.values()), "every model's order recorded"
    runs.clear()
    _generate(engine)
    for model in (engine.text_encoder, engine.transformer, engine.vae):
        mine = [(m, hit) for m, hit in runs if any(m is x for x in model.modules())]
        assert sum(hit for _, hit in mine) >= 0.9 * len(mine), f"{type(model).__name__}: too many missed prefetches"
    blocks = {id(m) for m in engine.transformer.transformer_blocks.modules() if isinstance(m, nn.Linear)}
    assert all(hit for m, hit in runs if id(m) in blocks), "every DiT block linear was prefetched"


class ScaledLinear(nn.Linear):
    """A leaf layer with its own buffer, as the fp8 layers' weight_scale."""

    def __init__(self) -> None:
        super().__init__(4, 4)
        self.register_buffer("scale", torch.full((), 2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


def test_sequential_offload_leaves_no_layer_buffer_on_the_device_and_unpins_removed_layers(cuda):
    model = nn.Sequential(ScaledLinear(), ScaledLinear())
    placement = Placement(DEV, "sequential_offload")
    with placement.use(model):
        model(torch.ones(1, 4))
    assert placement.device_bytes(model) == 0, "the layers' own buffers went back to their host copies"
    extra = nn.Linear(4, 4)
    model.append(extra)
    with placement.use(model):
        model(torch.ones(1, 4))
    assert cuda.covers(extra.weight)
    held = placement.pinned().held
    del model[2]  # an adapter removed (LoRA unloaded): its pinned storages go back at the next stage
    with placement.use(model):
        model(torch.ones(1, 4))
    assert held - placement.pinned().held == extra.weight.untyped_storage().nbytes() + extra.bias.nbytes
    assert placement.pinned().pinned == sum(cuda.registered.values()) and cuda.covers(model[0].weight)
