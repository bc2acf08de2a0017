"""The trained LoRA at inference: equal to diffusers' ConsisIDPipeline.load_lora_weights, stacking, unloading."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import consisid_core
from consisid_core.errors import UnsupportedInputError

from support.engine_inputs import PROMPT, face_image, identity

TOL = 1e-4
COMMON = dict(height=32, width=48, num_frames=9, num_inference_steps=3, guidance_scale=6.0)


def _inputs():
    id_cond, hidden = identity()
    return dict(image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, **COMMON)


@pytest.fixture(scope="module")
def engine(train_model):
    return consisid_core.load_engine(train_model, device="cpu", dtype=torch.float32)


def _ours(engine, seed=7):
    return engine.generate(PROMPT, seed=seed, **_inputs())


def test_saved_lora_matches_diffusers_pipeline(engine, train_model, lora_run):
    from diffusers import ConsisIDPipeline

    lora = lora_run[3].lora_path
    plain = _ours(engine)
    engine.load_lora(lora)
    try:
        ours = _ours(engine)
    finally:
        engine.unload_lora()
    pipe = ConsisIDPipeline.from_pretrained(str(train_model), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(lora.parent), weight_name=lora.name)
    ref = pipe(prompt=PROMPT, generator=torch.Generator("cpu").manual_seed(7), output_type="pt",
               max_sequence_length=pipe.transformer.config.max_text_seq_length, **_inputs()).frames[0]
    ref = ref.permute(0, 2, 3, 1).float()
    diff = (ours - ref).abs().max().item()
    print(f"LoRA parity with diffusers ConsisIDPipeline.load_lora_weights: max |diff| {diff:.2e}")
    assert diff <= TOL
    assert (ours - plain).abs().max().item() > 1e-3  # the LoRA changes the video
    assert torch.equal(_ours(engine), plain)  # unloading restores the model exactly


def test_strength_and_stacking(engine, lora_run, tmp_path):
    lora = lora_run[3].lora_path
    plain = _ours(engine)
    engine.load_lora(lora, strength=0.0, name="zero")
    assert torch.equal(_ours(engine), plain)
    engine.unload_lora("zero")
    engine.load_lora(lora, strength=1.0, name="a")
    full = _ours(engine)
    # a second LoRA with half of each B matrix, stacked at strength 2, adds the same update again
    half = {k: (v * 0.5 if ".lora_B." in k else v) for k, v in load_file(str(lora)).items()}
    with safe_open(str(lora), "pt") as handle:  # keep the adapter metadata (its alpha)
        metadata = handle.metadata()
    save_file(half, str(tmp_path / "half.safetensors"), metadata=metadata)
    engine.load_lora(tmp_path / "half.safetensors", strength=2.0, name="b")
    assert set(engine.loras) == {"a", "b"}
    stacked = _ours(engine)
    engine.unload_lora("a")
    engine.load_lora(lora, strength=2.0, name="a")
    engine.unload_lora("b")
    assert (stacked - _ours(engine)).abs().max().item() < 1e-4  # a + 2*(half) == 2*a
    assert (stacked - full).abs().max().item() > 1e-4
    engine.unload_lora()
    assert engine.loras == {} and torch.equal(_ours(engine), plain)


def test_foreign_lora_gets_one_clear_message(engine, tmp_path):
    bad = {"transformer.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 7),
           "transformer.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(32, 4),
           "transformer.transformer_blocks.0.attn1.to_zz.lora_A.weight": torch.zeros(4, 32)}
    save_file(bad, str(tmp_path / "sdxl_style.safetensors"))
    with pytest.raises(UnsupportedInputError, match="does not fit this ConsisID transformer") as info:
        engine.load_lora(tmp_path / "sdxl_style.safetensors")
    assert "to_zz" in str(info.value) and "(4, 7)" in str(info.value)
    assert engine.loras == {}
    with pytest.raises(consisid_core.ModelFilesError, match="does not exist"):
        engine.load_lora(tmp_path / "missing.safetensors")
    with pytest.raises(UnsupportedInputError, match="no LoRA named"):
        engine.unload_lora("nothing")


def _cogvideox_lora(folder, layers: int, seed: int = 0):
    """A LoRA made for a CogVideoX-I2V transformer (tiny, the ConsisID blocks' sizes), saved by its own pipeline."""
    from diffusers import CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    cog = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4,
                                      time_embed_dim=8, text_embed_dim=32, num_layers=layers, sample_width=6,
                                      sample_height=4, sample_frames=9, max_text_seq_length=16)
    cog.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():
        for name, param in cog.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.2)
    CogVideoXImageToVideoPipeline.save_lora_weights(str(folder), transformer_lora_layers=get_peft_model_state_dict(cog))
    return folder / "pytorch_lora_weights.safetensors"


def test_cogvideox_i2v_lora_loads_when_it_fits(engine, tmp_path):
    plain = _ours(engine)
    (tmp_path / "fits").mkdir()
    engine.load_lora(_cogvideox_lora(tmp_path / "fits", layers=2), name="cog")
    try:
        assert (_ours(engine) - plain).abs().max().item() > 1e-3
    finally:
        engine.unload_lora()
    (tmp_path / "deeper").mkdir()
    with pytest.raises(UnsupportedInputError, match="transformer_blocks.2.attn1"):
        engine.load_lora(_cogvideox_lora(tmp_path / "deeper", layers=3), name="deep")
    assert engine.loras == {} and torch.equal(_ours(engine), plain)
