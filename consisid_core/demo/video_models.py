"""Write a complete ConsisID-preview-style model folder with tiny random weights.

The folder has the official layout (`model_index.json`, `transformer/`, `vae/`, `text_encoder/`,
`tokenizer/`, `scheduler/`) so both our loader and `diffusers.ConsisIDPipeline.from_pretrained` read it.
The outputs are noise: this exists to exercise every code path quickly and offline.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch

# Word pieces the tiny tokenizers know; anything else falls back to <unk>.
_WORDS = (
    "a man woman person face smiles walks in the city street park at night day with camera light "
    "video of his her and on an old young portrait bright dark red blue green sky sea runs looks "
    "slowly quickly happy sad film shot close up wide"
).split()


@dataclass(frozen=True)
class TinySpec:
    """Sizes of a tiny model; defaults give a 9-frame 32x48 video in well under a second per step."""

    height: int = 32
    width: int = 48
    frames: int = 9
    text_len: int = 16
    is_kps: bool = False
    learned_positions: bool = True
    id_dim: int = 528  # ArcFace 512 + tiny EVA 16; the real model uses 1280 = 512 + 768
    vit_dim: int = 16  # EVA hidden width; the real model uses 1024
    tokenizer: str = "json"  # "json" (tokenizer.json) or "spiece" (sentencepiece, like the real repo)
    seed: int = 0

    @classmethod
    def real_face_dims(cls, **overrides) -> "TinySpec":
        """A tiny model whose face extractor takes the real 1280-d id_cond and 1024-wide EVA states."""
        return cls(**{"id_dim": 1280, "vit_dim": 1024, **overrides})


def _transformer_config(spec: TinySpec) -> dict:
    return dict(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=8,
        out_channels=4,
        time_embed_dim=8,
        text_embed_dim=32,
        num_layers=2,
        sample_width=spec.width // 8,
        sample_height=spec.height // 8,
        sample_frames=spec.frames,
        max_text_seq_length=spec.text_len,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=spec.learned_positions,
        is_train_face=True,
        is_kps=spec.is_kps,
        cross_attn_interval=1,
        cross_attn_dim_head=8,
        cross_attn_num_heads=2,
        LFE_id_dim=spec.id_dim,
        LFE_vit_dim=spec.vit_dim,
        LFE_depth=5,
        LFE_dim_head=8,
        LFE_num_heads=2,
        LFE_num_id_token=2,
        LFE_num_querie=4,
        LFE_output_dim=21,  # int(2/3 * heads * head_dim) = int(2/3 * 32)
        LFE_ff_mult=1,
        LFE_num_scale=5,
    )


def build_transformer(spec: TinySpec):
    """A tiny random ConsisIDTransformer3DModel."""
    from diffusers import ConsisIDTransformer3DModel

    torch.manual_seed(spec.seed)
    model = ConsisIDTransformer3DModel(**_transformer_config(spec))
    # Default init leaves some projections at zero; perturb everything so each weight matters.
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    return model.eval()


def build_vae(spec: TinySpec):
    """A tiny random AutoencoderKLCogVideoX (8x spatial, 4x temporal compression, 4 latent channels)."""
    from diffusers import AutoencoderKLCogVideoX

    torch.manual_seed(spec.seed + 1)
    return AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
        sample_height=spec.height,
        sample_width=spec.width,
        scaling_factor=0.7,
    ).eval()


def build_scheduler():
    """The ConsisID-preview scheduler settings (CogVideoX-5B)."""
    from diffusers import CogVideoXDPMScheduler

    return CogVideoXDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        clip_sample=False,
        steps_offset=0,
        timestep_spacing="trailing",
        snr_shift_scale=1.0,
    )


def _vocab() -> list[str]:
    return ["<pad>", "</s>", "<unk>"] + ["\u2581" + w for w in _WORDS] + list("abcdefghijklmnopqrstuvwxyz")


def build_text_encoder(vocab_size: int, seed: int):
    """A tiny random T5 encoder with a 32-wide output (the transformer's text_embed_dim)."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed + 2)
    config = T5Config(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
    )
    return T5EncoderModel(config).eval()


def write_tokenizer_json(folder: Path, text_len: int) -> int:
    """Write a Unigram tokenizer.json built in code; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    vocab = _vocab()
    scores = [(token, 0.0 if i < 3 else -float(i)) for i, token in enumerate(vocab)]
    tok = Tokenizer(models.Unigram(scores, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = T5TokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0,
        model_max_length=text_len,
    )
    fast.save_pretrained(str(folder))
    return len(vocab)


def write_sentencepiece(folder: Path, text_len: int) -> int:
    """Train a tiny sentencepiece model offline and write it as `spiece.model` like the real repo."""
    import sentencepiece as spm

    sentences = [" ".join(_WORDS[i:] + _WORDS[:i]) for i in range(len(_WORDS))]
    buffer = io.BytesIO()
    vocab_size = 96
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=buffer, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(buffer.getvalue())
    config = {
        "tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "extra_ids": 0, "model_max_length": text_len, "legacy": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    processor = spm.SentencePieceProcessor(model_proto=buffer.getvalue())
    return processor.get_piece_size()


def write_tiny_model(folder: str | Path, spec: TinySpec = TinySpec()) -> Path:
    """Write a tiny ConsisID model folder in the official layout and return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = folder / "tokenizer"
    if spec.tokenizer == "spiece":
        vocab_size = write_sentencepiece(tokenizer_dir, spec.text_len)
    elif spec.tokenizer == "json":
        vocab_size = write_tokenizer_json(tokenizer_dir, spec.text_len)
    else:
        raise ValueError(f"unknown tokenizer kind {spec.tokenizer!r}")

    build_transformer(spec).save_pretrained(str(folder / "transformer"))
    build_vae(spec).save_pretrained(str(folder / "vae"))
    build_text_encoder(vocab_size, spec.seed).save_pretrained(str(folder / "text_encoder"))
    build_scheduler().save_pretrained(str(folder / "scheduler"))
    model_index = {
        "_class_name": "ConsisIDPipeline",
        "_diffusers_version": "0.32.0.dev0",
        "scheduler": ["diffusers", "CogVideoXDPMScheduler"],
        "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"],
        "transformer": ["diffusers", "ConsisIDTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLCogVideoX"],
    }
    (folder / "model_index.json").write_text(json.dumps(model_index, indent=2))
    return folder
