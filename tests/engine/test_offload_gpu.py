"""GPU lane for the memory modes: on CUDA the offload modes give the same frames as `none`, keep pinned host
copies whose storage never changes, never copy a weight back to the host and hold less on the device.
Skipped, with the reason printed, where torch sees no CUDA GPU."""

from __future__ import annotations

import pytest
import torch

import consisid_core
from consisid_core.engine.offload import host_tensors
from support.engine_inputs import PROMPT, face_image, identity

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the offload GPU lane was not run"),
]
COMMON = dict(height=32, width=48, num_frames=9, num_inference_steps=3, guidance_scale=6.0, seed=5)


def _generate(engine) -> torch.Tensor:
    id_cond, hidden = identity()
    return engine.generate(PROMPT, image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, **COMMON)


@pytest.mark.parametrize("mode", ["model_offload", "sequential_offload"])
def test_offload_on_cuda_streams_from_pinned_host_copies_without_copying_back(tiny_model, mode, monkeypatch):
    reference = consisid_core.load_engine(tiny_model, device="cuda", dtype="bf16")
    expected = _generate(reference)
    del reference
    torch.cuda.empty_cache()

    engine = consisid_core.load_engine(tiny_model, device="cuda", dtype="bf16", memory_mode=mode)
    models = (engine.text_encoder, engine.transformer, engine.vae)
    assert all(p.is_pinned() for m in models for p in m.parameters()), "host copies are pinned"
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
    print(f"\n{mode}: peak {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB on the GPU")
