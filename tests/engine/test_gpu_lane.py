"""GPU lane: bf16 on CUDA against diffusers' ConsisIDPipeline with the same CUDA generator (noise_device 'gpu'),
and each attention backend that imports. Skipped, with the reason printed, where torch sees no CUDA GPU."""

from __future__ import annotations

import pytest
import torch

import consisid_core
from consisid_core.runtime.attention import available_backends
from support.engine_inputs import PROMPT, face_image, identity

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the bf16 CUDA lane was not run"),
]
COMMON = dict(height=32, width=48, num_frames=9, num_inference_steps=4, guidance_scale=6.0)
BF16_TOL = 2e-2  # same kernels and RNG; only op-order rounding may differ


def _pipeline_frames(folder, generator: torch.Generator, **kwargs) -> torch.Tensor:
    from diffusers import ConsisIDPipeline

    pipe = ConsisIDPipeline.from_pretrained(str(folder), torch_dtype=torch.bfloat16).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    out = pipe(generator=generator, output_type="pt", max_sequence_length=pipe.transformer.config.max_text_seq_length,
               **kwargs)
    return out.frames[0].permute(0, 2, 3, 1).float().cpu()


@pytest.fixture(scope="module")
def cuda_engine(tiny_model):
    return consisid_core.load_engine(tiny_model, device="cuda", dtype="bf16", noise_device="gpu")


def test_bf16_cuda_matches_consisid_pipeline_with_the_same_cuda_generator(tiny_model, cuda_engine, monkeypatch):
    id_cond, hidden = identity()
    inputs = dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, **COMMON)
    theirs_gen = torch.Generator("cuda").manual_seed(42)
    ref = _pipeline_frames(tiny_model, theirs_gen, prompt=PROMPT, **inputs)

    ours_gen = {}
    make = cuda_engine.make_generator
    monkeypatch.setattr(cuda_engine, "make_generator",
                        lambda seed, nd=None: ours_gen.setdefault("g", make(seed, nd)))
    ours = cuda_engine.generate(PROMPT, seed=42, **inputs).cpu()
    assert ours_gen["g"].device.type == "cuda"
    diff = (ours - ref).abs().max().item()
    print(f"\nbf16 CUDA vs ConsisIDPipeline (torch.Generator('cuda'), seed 42): max |diff| = {diff:.3g}")
    assert torch.equal(ours_gen["g"].get_state(), theirs_gen.get_state()), "the same random draws in the same order"
    assert diff <= BF16_TOL
    cpu_noise = cuda_engine.generate(PROMPT, seed=42, noise_device="cpu", **inputs).cpu()
    assert (cpu_noise - ref).abs().max().item() > 1e-2, "the noise device matters"


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "sdpa"])
def test_each_importable_attention_backend_runs_in_bf16(tiny_model, cuda_engine, backend):
    id_cond, hidden = identity()
    inputs = dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, seed=1, **COMMON)
    base = cuda_engine.generate(PROMPT, **inputs).cpu()
    other = consisid_core.load_engine(tiny_model, device="cuda", dtype="bf16", attention=backend,
                                      noise_device="gpu").generate(PROMPT, **inputs).cpu()
    diff = (other - base).abs().max().item()
    print(f"\nattention {backend} vs sdpa (bf16 CUDA): max |diff| = {diff:.3g}")
    assert diff <= 5e-2
