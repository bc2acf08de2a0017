"""GPU lane for the memory modes: on CUDA (bf16) every mode gives the frames of `none`; the offload modes
stream from host copies pinned in place (cudaHostRegister: at most 1.1x the bytes held, nothing in torch's
pinned allocator, `pin_memory()` never called), never copy a weight back, leave nothing on the GPU after a
stage, and unpin on release. Skipped, with the reason printed, where torch sees no CUDA GPU."""

from __future__ import annotations

import gc

import pytest
import torch

import consisid_core
from consisid_core.runtime import offload_groups
from consisid_core.runtime.offload import host_tensors
from support.engine_inputs import PROMPT, face_image, identity

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the offload GPU lane was not run"),
]
COMMON = dict(height=32, width=48, num_frames=9, num_inference_steps=3, guidance_scale=6.0, seed=5)


def _generate(engine) -> torch.Tensor:
    id_cond, hidden = identity()
    return engine.generate(PROMPT, image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, **COMMON)


def _host_allocator_bytes() -> int:
    stats = torch.cuda.host_memory_stats() if hasattr(torch.cuda, "host_memory_stats") else {}
    return int(stats.get("allocated_bytes.all.current", stats.get("allocated_bytes.current", 0)))


@pytest.fixture(scope="module")
def expected(tiny_model):
    reference = consisid_core.load_engine(tiny_model, device="cuda", dtype="bf16")
    frames = _generate(reference)
    del reference
    gc.collect()
    torch.cuda.empty_cache()
    return frames


@pytest.mark.parametrize("mode", ["model_offload", "sequential_offload"])
def test_offload_on_cuda_streams_from_host_copies_pinned_in_place(tiny_model, expected, mode, monkeypatch):
    def no_pin_memory(self, *args, **kwargs):
        raise AssertionError("Tensor.pin_memory() was called")

    monkeypatch.setattr(torch.Tensor, "pin_memory", no_pin_memory)
    host_allocated = _host_allocator_bytes()
    engine = consisid_core.load_engine(tiny_model, device="cuda", dtype="bf16", memory_mode=mode)
    models = (engine.text_encoder, engine.transformer, engine.vae)
    before = host_tensors(models)
    copied_back = []
    original_to = torch.Tensor.to

    def watch_to(self, *args, **kwargs):
        out = original_to(self, *args, **kwargs)
        if isinstance(self, torch.nn.Parameter) and self.is_cuda and not out.is_cuda:
            copied_back.append(tuple(self.shape))
        return out

    monkeypatch.setattr(torch.Tensor, "to", watch_to)
    for _ in range(2):
        torch.cuda.reset_peak_memory_stats()
        frames = _generate(engine)
        assert torch.equal(frames, expected), "same kernels, same weights: identical frames"
        assert host_tensors(models) == before, "host copies keep their storage"
        assert all(engine.placement.device_bytes(m) == 0 for m in models), "nothing left on the GPU after"
    assert copied_back == []
    copies = offload_groups.host_copies(models)
    hosts = [copies.get(id(t), t) for m in models for t in offload_groups.own_tensors(m)]
    assert all(t.is_pinned() for t in hosts), "CUDA sees every host copy as pinned"
    stats = engine.placement.pinned()
    assert stats.held >= sum(t.nbytes for t in hosts) and stats.ratio <= 1.1, stats
    assert _host_allocator_bytes() == host_allocated, "nothing went through torch's pinned allocator"
    if mode == "sequential_offload":
        assert all(s.finished and s.streams for s in engine.placement._streamers.values()), "streams, order recorded"
    print(f"\n{mode}: peak {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB on the GPU; pinned "
          f"{stats.pinned / 2**20:.1f} MiB for {stats.held / 2**20:.1f} MiB held ({stats.ratio:.4f}x)")
    engine.release()
    assert not any(t.is_pinned() for t in hosts), "release unpins"
    assert torch.equal(_generate(engine), expected), "a released engine comes back"
