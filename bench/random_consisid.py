"""A random-weight ConsisID model folder in the official layout, at full or tiny size, written without ever
allocating the whole model (meta-device modules, one shard of random tensors in host RAM at a time).

Used by bench/gpu_check.py; `write_random_model(folder, PROFILES["full"], "cuda")` gives the real ConsisID
config (42 layers, width 3072, real face-extractor sizes), the real CogVideoX VAE and a 2-layer random T5
with the real 4096-wide output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SHARD_BYTES = 5 * 1024**3

# ---- model sizes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """Sizes of the random model and of the video generated with it."""

    name: str
    transformer: dict
    vae: dict
    t5: dict
    height: int
    width: int
    frames: int
    text_len: int
    eva_tokens: int  # EVA-CLIP hidden states per scale (577 for the real 336 px tower)


def _transformer_config(layers: int, heads: int, head_dim: int, height: int, width: int, frames: int, text_len: int,
                        text_dim: int, lfe: dict) -> dict:
    return dict(
        num_attention_heads=heads, attention_head_dim=head_dim, in_channels=32, out_channels=16, time_embed_dim=512,
        text_embed_dim=text_dim, num_layers=layers, sample_width=width // 8, sample_height=height // 8,
        sample_frames=frames, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=text_len,
        spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0, use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True, is_train_face=True, is_kps=False, cross_attn_interval=2,
        local_face_scale=1.0, **lfe,
    )


REAL_LFE = dict(cross_attn_dim_head=128, cross_attn_num_heads=16, LFE_id_dim=1280, LFE_vit_dim=1024, LFE_depth=10,
                LFE_dim_head=64, LFE_num_heads=16, LFE_num_id_token=5, LFE_num_querie=32, LFE_output_dim=2048,
                LFE_ff_mult=4, LFE_num_scale=5)
TINY_LFE = dict(cross_attn_dim_head=8, cross_attn_num_heads=2, LFE_id_dim=528, LFE_vit_dim=16, LFE_depth=5,
                LFE_dim_head=8, LFE_num_heads=2, LFE_num_id_token=2, LFE_num_querie=4, LFE_output_dim=21,
                LFE_ff_mult=1, LFE_num_scale=5)
REAL_VAE = dict(block_out_channels=(128, 256, 256, 512), latent_channels=16, layers_per_block=3, norm_num_groups=32,
                sample_height=480, sample_width=720, scaling_factor=0.7)
TINY_VAE = dict(block_out_channels=(8, 8, 8, 8), latent_channels=16, layers_per_block=1, norm_num_groups=2,
                sample_height=32, sample_width=48, scaling_factor=0.7)

PROFILES = {
    "full": Profile("full", _transformer_config(42, 48, 64, 480, 720, 49, 226, 4096, REAL_LFE), REAL_VAE,
                    dict(d_model=4096, d_kv=64, d_ff=1024, num_layers=2, num_heads=8), 480, 720, 49, 226, 577),
    "tiny": Profile("tiny", _transformer_config(2, 2, 16, 32, 48, 9, 16, 64, TINY_LFE), TINY_VAE,
                    dict(d_model=64, d_kv=8, d_ff=64, num_layers=2, num_heads=4), 32, 48, 9, 16, 5),
}

# ---- random model in the official layout ---------------------------------------------------------------------


def _random_tensor(shape, dtype, generator, device):
    import torch

    if len(shape) == 0:
        return torch.zeros((), dtype=dtype)
    values = torch.randn(tuple(shape), generator=generator, device=device, dtype=torch.float32).mul_(0.02)
    return values.to(dtype).cpu()


def write_random_component(cls, config: dict, folder: Path, dtype, seed: int, device: str) -> None:
    """Config + sharded safetensors with random N(0, 0.02) weights, built without allocating the module."""
    import torch
    from safetensors.torch import save_file

    with torch.device("meta"):
        model = cls(**config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_config(str(folder))
    generator = torch.Generator(device).manual_seed(seed)
    entries = [(name, meta.shape, dtype if meta.is_floating_point() else meta.dtype)
               for name, meta in model.state_dict().items()]
    groups: list[list] = [[]]
    size = 0
    for entry in entries:  # plan the shards first, then write one at a time (one shard in host RAM)
        nbytes = entry[1].numel() * torch.empty((), dtype=entry[2]).element_size()
        if size and size + nbytes > SHARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += nbytes
    weight_map, total = {}, 0
    for i, group in enumerate(groups, 1):
        shard = {name: _random_tensor(shape, kind, generator, device).contiguous() for name, shape, kind in group}
        filename = ("diffusion_pytorch_model.safetensors" if len(groups) == 1
                    else f"diffusion_pytorch_model-{i:05d}-of-{len(groups):05d}.safetensors")
        save_file(shard, str(folder / filename), metadata={"format": "pt"})
        weight_map.update({k: filename for k in shard})
        total += sum(t.nbytes for t in shard.values())
        del shard
    if len(groups) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def write_random_model(folder: Path, profile: Profile, device: str) -> Path:
    """Tokenizer, scheduler and model_index from the tiny-model writer; transformer, VAE and T5 at `profile` sizes."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, ConsisIDTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    from consisid_core.demo.video_models import TinySpec, write_tiny_model

    write_tiny_model(folder, TinySpec(height=profile.height, width=profile.width, frames=profile.frames,
                                      text_len=profile.text_len))
    write_random_component(ConsisIDTransformer3DModel, profile.transformer, folder / "transformer", torch.bfloat16, 0,
                           device)
    vae = dict(in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
               up_block_types=("CogVideoXUpBlock3D",) * 4, temporal_compression_ratio=4, **profile.vae)
    write_random_component(AutoencoderKLCogVideoX, vae, folder / "vae", torch.bfloat16, 1, device)
    vocab = T5Config.from_pretrained(str(folder / "text_encoder")).vocab_size
    torch.manual_seed(2)
    t5 = T5EncoderModel(T5Config(vocab_size=vocab, relative_attention_num_buckets=32, **profile.t5))
    t5.to(torch.bfloat16).save_pretrained(str(folder / "text_encoder"))
    return folder
