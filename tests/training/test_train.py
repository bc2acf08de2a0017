"""Training on the prepared synthetic clip: the loss falls, resume is bit-identical, stages, full fine-tune."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from consisid_core.training.recipe import TrainConfig
from consisid_core.training.trainer import Trainer

LORA = dict(mode="lora", lora_rank=4, lora_alpha=4, learning_rate=5e-2, warmup_steps=0, coarse_steps=0,
            text_dropout=0.0, checkpoint_every=1000)


def _snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_thirty_lora_steps_lower_the_loss(lora_run):
    trainer, before, after, result = lora_run
    assert trainer.evaluate(16) == after  # the evaluation draws are fixed: only the weights change it
    print(f"tiny LoRA run: eval loss {before:.4f} -> {after:.4f} ({after / before:.3f}x), "
          f"{result.seconds_per_step * 1000:.0f} ms/step")
    assert result.finished and len(result.losses) == 30
    assert after < 0.9 * before
    assert not list(result.run_dir.glob(".*")), "a partial file was left behind"
    saved = load_file(str(result.lora_path))
    assert saved and all(k.startswith("transformer.transformer_blocks.") and ".lora_" in k for k in saved)
    assert {k.split(".attn1.")[1].rsplit(".lora_", 1)[0] for k in saved} == {"to_q", "to_k", "to_v", "to_out.0"}


def test_resume_after_an_interruption_is_bit_identical(tmp_path, train_model, prepared):
    config = dict(LORA, max_steps=6, checkpoint_every=2, mask_prob=0.5, cross_face_prob=0.5, coarse_steps=2,
                  text_dropout=0.3, image_dropout=0.3)
    straight = Trainer(train_model, prepared, tmp_path / "a", TrainConfig(**config)).run(log=lambda s: None)
    cut = Trainer(train_model, prepared, tmp_path / "b", TrainConfig(**config)).run(stop_at=3, log=lambda s: None)
    assert not cut.finished and cut.step == 3
    resumed = Trainer(train_model, prepared, tmp_path / "b", TrainConfig(**config)).run(log=lambda s: None)
    assert resumed.losses == straight.losses  # exactly: same draws, same weights, optimizer and schedule
    a, b = load_file(str(straight.lora_path)), load_file(str(resumed.lora_path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(Exception, match="other settings"):
        Trainer(train_model, prepared, tmp_path / "b", TrainConfig(**{**config, "learning_rate": 1e-3})).run()


def test_coarse_stage_leaves_the_local_extractor_unchanged(tmp_path, train_model, prepared):
    config = dict(mode="full", learning_rate=1e-3, warmup_steps=0, checkpoint_every=1000, max_steps=2)
    trainer = Trainer(train_model, prepared, tmp_path / "coarse", TrainConfig(coarse_steps=2, **config))
    lfe, pca = _snapshot(trainer.transformer.local_facial_extractor), _snapshot(trainer.transformer.perceiver_cross_attention)
    blocks = _snapshot(trainer.transformer.transformer_blocks)
    calls = []
    trainer.transformer.local_facial_extractor.register_forward_hook(lambda *a: calls.append(1))
    result = trainer.run(log=lambda s: None)
    assert calls == []  # bypassed, not merely frozen: the coarse stage sees the global conditioning only
    assert all(torch.equal(v, trainer.transformer.local_facial_extractor.state_dict()[k]) for k, v in lfe.items())
    assert all(torch.equal(v, trainer.transformer.perceiver_cross_attention.state_dict()[k]) for k, v in pca.items())
    assert not all(torch.equal(v, trainer.transformer.transformer_blocks.state_dict()[k]) for k, v in blocks.items())
    # the full fine-tune is written as transformer/ in the official layout, loadable by diffusers
    from diffusers import ConsisIDTransformer3DModel

    folder = result.transformer_dir
    assert sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(".")) == []  # no partial folder
    assert (folder / "config.json").is_file() and list(folder.glob("diffusion_pytorch_model*.safetensors"))
    reloaded = ConsisIDTransformer3DModel.from_pretrained(str(folder))
    trained = trainer.transformer.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in reloaded.state_dict().items())

    fine = Trainer(train_model, prepared, tmp_path / "fine", TrainConfig(coarse_steps=0, **config))
    lfe = _snapshot(fine.transformer.local_facial_extractor)
    fine.transformer.local_facial_extractor.register_forward_hook(lambda *a: calls.append(1))
    fine.run(log=lambda s: None)
    assert len(calls) == 2
    assert not all(torch.equal(v, fine.transformer.local_facial_extractor.state_dict()[k]) for k, v in lfe.items())


def test_cross_face_branch_uses_a_reference_from_outside_the_window(tmp_path, train_model, prepared):
    from consisid_core.training.dataset import identity_tensors

    trainer = Trainer(train_model, prepared, tmp_path, TrainConfig(max_steps=1, cross_face_prob=1.0, mask_prob=0.0, **{
        k: v for k, v in LORA.items() if k not in ("mask_prob",)}))
    sample = trainer.dataset[0]
    outside = [r for r in sample["entry"]["refs"] if not r["inside"]]
    window = sample["entry"]["frames"]
    assert outside and all(not window[0] <= r["frame"] <= window[-1] for r in outside)
    batch = trainer.batch([sample])
    assert batch.refs == ["outside"] and batch.masks == [None]
    assert any(torch.equal(batch.id_cond, identity_tensors(sample, r)[0]) for r in outside)
    trainer.config.cross_face_prob = 0.0
    plain = trainer.batch([sample])
    inside = [r for r in sample["entry"]["refs"] if r["inside"]][0]
    assert plain.refs == ["inside"] and torch.equal(plain.id_cond, identity_tensors(sample, inside)[0])
    trainer.config.mask_prob = 1.0
    masked = trainer.batch([sample])
    assert torch.equal(masked.masks[0], sample["tensors"]["mask"])
    state = json.loads((prepared / "dataset.json").read_text())
    assert state["frames"] == 9


def test_gradient_checkpointing_gives_the_same_step(tmp_path, train_model, prepared):
    config = dict(LORA, max_steps=2, coarse_steps=1)
    plain = Trainer(train_model, prepared, tmp_path / "plain", TrainConfig(**config)).run(log=lambda s: None)
    ckpt = Trainer(train_model, prepared, tmp_path / "ckpt", TrainConfig(gradient_checkpointing=True, **config))
    calls = []
    import torch.utils.checkpoint as cp

    original = cp.checkpoint
    cp.checkpoint = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        result = ckpt.run(log=lambda s: None)
    finally:
        cp.checkpoint = original
    assert calls, "the blocks were not recomputed"
    assert result.losses == pytest.approx(plain.losses, rel=1e-6)
    a, b = load_file(str(plain.lora_path)), load_file(str(result.lora_path))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one mixed-precision setting per process (a real run has one); tests switching it reset it."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def test_bf16_lora_run_on_cpu_keeps_lora_weights_in_fp32(tmp_path, train_model, prepared, fresh_accelerate_state):
    """The GPU setting (bf16 base, autocast) exercised on the CPU: dtype boundaries hold, the loss stays finite."""
    trainer = Trainer(train_model, prepared, tmp_path, TrainConfig(mixed_precision="bf16", max_steps=2, **LORA))
    base = trainer.transformer.transformer_blocks[0].attn1.to_q.base_layer.weight
    lora = trainer.transformer.transformer_blocks[0].attn1.to_q.lora_A["default"].weight
    assert base.dtype == torch.bfloat16 and not base.requires_grad and lora.dtype == torch.float32
    trainer.vae.to(torch.bfloat16)  # as on a GPU: the VAE runs in bf16, the cached latents stay float32
    before = lora.detach().clone()
    result = trainer.run(log=lambda s: None)
    assert all(torch.isfinite(torch.tensor(result.losses))) and not torch.equal(before, lora.detach())
    saved = load_file(str(result.lora_path))
    assert all(v.dtype == torch.float32 for v in saved.values())


def test_lora_targets_and_face_learning_rate():
    from consisid_core.demo.video_models import TinySpec, build_transformer
    from consisid_core.training.adapters import param_groups, setup_trainable

    def lora_layers(model):
        return sorted({n.rsplit(".lora_", 1)[0] for n, p in model.named_parameters() if p.requires_grad})

    plain = build_transformer(TinySpec())
    setup_trainable(plain, TrainConfig(lora_rank=4, lora_alpha=4))
    names = lora_layers(plain)
    assert len(names) == 2 * 4 and all(n.startswith("transformer_blocks.") for n in names)  # not the face modules
    face = build_transformer(TinySpec())
    setup_trainable(face, TrainConfig(lora_rank=4, lora_alpha=4, lora_face=True))
    extra = [n for n in lora_layers(face) if n.startswith("perceiver_cross_attention.")]
    assert len(extra) == 2 * 3 and not any(n.startswith("local_facial_extractor") for n in lora_layers(face))

    full = build_transformer(TinySpec())
    config = TrainConfig(mode="full", learning_rate=1e-5, face_lr_mult=10.0)
    setup_trainable(full, config)
    groups = param_groups(full, config)
    pca = {id(p) for p in full.perceiver_cross_attention.parameters()}
    assert [g["lr"] for g in groups] == [1e-4, 1e-5]
    assert {id(p) for p in groups[0]["params"]} == pca and not pca & {id(p) for p in groups[1]["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(full.parameters()))
