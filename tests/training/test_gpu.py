"""GPU lane for training and LoRA: bf16 LoRA steps on CUDA lower the loss like on the CPU, and a LoRA on a bf16
CUDA engine in every memory mode gives the frames of the `none` mode. Skipped, with the reason printed, where
torch sees no CUDA GPU (this task had none: not run)."""

from __future__ import annotations

import pytest
import torch

import consisid_core
from consisid_core.training.recipe import TrainConfig
from consisid_core.training.trainer import Trainer

from support.engine_inputs import PROMPT, face_image, identity

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the training GPU lane was not run"),
]


def test_bf16_lora_training_on_cuda(tmp_path, train_model, prepared):
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    try:
        trainer = Trainer(train_model, prepared, tmp_path, TrainConfig(
            mode="lora", lora_rank=4, lora_alpha=8, learning_rate=2.5e-2, warmup_steps=0, coarse_steps=0,
            text_dropout=0.0, checkpoint_every=1000, max_steps=30, mixed_precision="bf16"))
        assert trainer.accelerator.device.type == "cuda"
        before = trainer.evaluate(16)
        trainer.run(log=lambda s: None)
        assert trainer.evaluate(16) < 0.9 * before
    finally:
        AcceleratorState._reset_state(True)


@pytest.mark.parametrize("mode", ["model_offload", "sequential_offload"])
def test_lora_in_offload_modes_on_cuda(train_model, lora_run, mode):
    id_cond, hidden = identity()
    common = dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, height=32, width=48, num_frames=9,
                  num_inference_steps=3, guidance_scale=6.0, seed=5)
    expected_engine = consisid_core.load_engine(train_model, device="cuda", dtype="bf16")
    expected_engine.load_lora(lora_run[3].lora_path)
    expected = expected_engine.generate(PROMPT, **common)
    del expected_engine
    engine = consisid_core.load_engine(train_model, device="cuda", dtype="bf16", memory_mode=mode)
    engine.load_lora(lora_run[3].lora_path)
    assert (engine.generate(PROMPT, **common) - expected).abs().max().item() < 1e-2
