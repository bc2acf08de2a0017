"""Pinning registers the host storages where they are, at their size (cudaHostRegister through an injected
spy here), never through `Tensor.pin_memory()`, and gives every range back."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import torch
from torch import nn

from consisid_core.runtime import pinning
from consisid_core.runtime.offload import Placement
from consisid_core.runtime.pinning import PAGE, HostPins
from engine.test_offload_fakes import CudaSpy, pretend_cuda


def _storage_views(buffer: bytearray, spans: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Tensors with their own storages at chosen offsets of one buffer (so two can share a page)."""
    view = memoryview(buffer)
    return [torch.frombuffer(view[start:start + n], dtype=torch.uint8) for start, n in spans]


def test_each_storage_is_registered_at_its_exact_size_and_page_sharers_together():
    spy = CudaSpy()
    pins = HostPins(spy.register, spy.unregister)
    buffer = bytearray(8 * PAGE)
    base = torch.frombuffer(buffer, dtype=torch.uint8).data_ptr()
    spans = [(0, 100), (200, 300), (3 * PAGE + 8, PAGE), (6 * PAGE, PAGE // 2)]  # two share page 0
    tensors = _storage_views(buffer, spans)
    assert pins.pin(tensors)
    assert spy.registered == {base: 500, base + 3 * PAGE + 8: PAGE, base + 6 * PAGE: PAGE // 2}
    stats = pins.stats()
    assert stats.held == 100 + 300 + PAGE + PAGE // 2 and stats.pinned == 500 + PAGE + PAGE // 2
    pins.pin(tensors[:2])  # already pinned: nothing registered again
    assert len(spy.register_calls) == 3
    pins.unpin(tensors[1:2])  # the page sharer left: its neighbour is registered alone
    assert spy.registered == {base: 100, base + 3 * PAGE + 8: PAGE, base + 6 * PAGE: PAGE // 2}
    pins.release()
    assert spy.registered == {} and pins.stats().pinned == 0


def test_a_storage_stays_alive_while_registered_and_is_freed_after():
    spy = CudaSpy()
    pins = HostPins(spy.register, spy.unregister)
    memory = np.ones(4096, dtype=np.float32)  # the storage below lives in this array, which can be watched
    alive = weakref.ref(memory)
    pins.pin([torch.from_numpy(memory)])
    del memory
    gc.collect()
    assert alive() is not None, "memory still registered is never freed"
    pins.release()
    gc.collect()
    assert alive() is None and spy.registered == {}


def _cogvideox_like_blocks(blocks: int, dim: int = 3072, ff: int = 12288, temb: int = 512) -> nn.Module:
    """Blocks with CogVideoX-5B's tensor shapes (bf16, not initialised): about 264 MB each."""
    def linear(i: int, o: int) -> nn.Linear:
        return nn.Linear(i, o, device="meta", dtype=torch.bfloat16)

    def block() -> nn.Module:
        b = nn.Module()
        b.norm1, b.norm2 = linear(temb, 6 * dim), linear(temb, 6 * dim)
        b.ln1, b.ln2 = nn.LayerNorm(dim, device="meta"), nn.LayerNorm(dim, device="meta")
        b.q, b.k, b.v, b.out = (linear(dim, dim) for _ in range(4))
        b.norm_q, b.norm_k = nn.LayerNorm(64, device="meta"), nn.LayerNorm(64, device="meta")
        b.ff_in, b.ff_out = linear(dim, ff), linear(ff, dim)
        return b

    model = nn.ModuleList(block() for _ in range(blocks))
    return model.to_empty(device="cpu").to(torch.bfloat16)


def test_realistic_size_pins_at_most_1_1x_the_bytes_held(capsys):
    """About 1 GiB of CogVideoX-shaped bf16 tensors: the accounting the Placement reports."""
    spy = CudaSpy()
    model = _cogvideox_like_blocks(4)
    pins = HostPins(spy.register, spy.unregister)
    assert pins.pin(model.parameters())
    stats = pins.stats()
    held = sum(p.untyped_storage().nbytes() for p in model.parameters())
    rounded = sum(1 << (p.nbytes - 1).bit_length() for p in model.parameters())  # what pin_memory() would take
    assert stats.held == held and stats.pinned == sum(spy.registered.values())
    assert held <= stats.pinned <= 1.1 * held
    with capsys.disabled():
        print(f"\npinned {stats.pinned / 2**30:.4f} GiB for {held / 2**30:.4f} GiB held: ratio {stats.ratio:.6f} "
              f"({len(spy.registered)} ranges; power-of-two blocks would take {rounded / held:.3f}x)")
    pins.release()
    assert spy.registered == {}


def test_a_refused_registration_moves_without_a_stream_and_never_pins_through_torch(monkeypatch):
    cuda = pretend_cuda(monkeypatch)
    monkeypatch.setattr(pinning, "cuda_register", lambda ptr, nbytes: False)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    for mode in ("model_offload", "sequential_offload"):
        placement = Placement(torch.device("cpu"), mode)
        with placement.use(model):
            out = model(torch.ones(1, 4))  # (Tensor.pin_memory raises under pretend_cuda)
        assert out.shape == (1, 4) and placement.pinned().pinned == 0
        assert cuda.transfers == [], "no streamed copy from unpinned memory"
        placement.release(model)
