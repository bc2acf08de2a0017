"""Random-weight scoring models in the official files and folder layout, built offline (no download).

`write_eval_models` gives models/consisid/{ConsisID-preview/face_encoder, eval}: tiny antelope-style buffalo_l ONNX
files, IR-101 and the FID Inception in their official state-dict layouts, and a CLIP folder (tiny, or ViT-B/32
sized with `full_clip`). Used by the metrics tests and bench/bench_metrics.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0, gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Plausible random values per key kind: conv/linear weights of variance gain/fan_in (2 = He, which keeps a deep
    ReLU stack from collapsing every input to the same output), BN stats near (0, 1)."""
    rng = np.random.default_rng(seed)
    state = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.long)
            continue
        if key.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean") or key.endswith("bias"):
            value = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1:  # BN scale or PReLU slope
            value = rng.uniform(0.2, 1.0, shape) if gain == 1.0 else rng.uniform(0.8, 1.2, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            value = rng.normal(0.0, np.sqrt(gain / fan_in), shape)
        state[key] = torch.from_numpy(np.asarray(value, dtype=np.float32))
    return state


def shapes_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a module's state dict (the layout a random state is drawn for)."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


# ---- CLIP in the openai/clip-vit-base-patch32 folder layout -------------------------------------------------

PREPROCESSOR = {
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
    "do_rescale": True, "do_resize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224},
}


def _byte_chars() -> list[str]:
    """GPT-2/CLIP byte-to-unicode alphabet (256 printable characters)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def write_tokenizer(folder: Path) -> int:
    """CLIP's byte-level BPE files with a tiny merge list; returns the vocabulary size."""
    chars = _byte_chars()
    vocab = chars + [c + "</w>" for c in chars]
    merges = ["t h", "th e</w>", "a n", "an d</w>", "m a", "ma n</w>"]
    for m in merges:
        vocab.append(m.replace(" ", ""))
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>"}), encoding="utf-8")
    return len(vocab)


def write_clip(folder: Path, full: bool = False, seed: int = 0) -> Path:
    """Write config.json, model.safetensors, preprocessor_config.json and the tokenizer files."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tokenizer(folder)
    if full:  # CLIPConfig's defaults are ViT-B/32
        config = CLIPConfig()
    else:
        config = CLIPConfig(
            text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "vocab_size": vocab_size, "max_position_embeddings": 77, "eos_token_id": vocab_size - 1,
                         "bos_token_id": vocab_size - 2, "pad_token_id": vocab_size - 1},
            vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                           "image_size": 224, "patch_size": 32},
            projection_dim=16,
        )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(folder, safe_serialization=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR), encoding="utf-8")
    return folder


# ---- the scoring models' folders -------------------------------------------------------------------------------

# the official FID Inception file also holds ImageNet heads, which our loader ignores
_INCEPTION_HEADS = {
    "AuxLogits.conv0.conv.weight": (128, 768, 1, 1), "AuxLogits.conv1.conv.weight": (768, 128, 5, 5),
    **{f"AuxLogits.conv0.bn.{k}": (128,) for k in ("weight", "bias", "running_mean", "running_var")},
    **{f"AuxLogits.conv1.bn.{k}": (768,) for k in ("weight", "bias", "running_mean", "running_var")},
    "AuxLogits.fc.weight": (1000, 768), "AuxLogits.fc.bias": (1000,), "fc.weight": (1000, 2048), "fc.bias": (1000,),
}


def inception_file_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of pt_inception-2015-12-05's state dict (BatchNorm counters left out)."""
    from consisid_core.metrics.inception import InceptionV3Features

    shapes = {k: v for k, v in shapes_of(InceptionV3Features()).items() if not k.endswith("num_batches_tracked")}
    return {**shapes, **_INCEPTION_HEADS}


def write_eval_models(root: Path, ir_units: tuple[int, ...] | None = None, full_clip: bool = False) -> Path:
    """models/consisid/{ConsisID-preview/face_encoder, eval} with random weights in the official formats.

    `ir_units`: IR backbone depth per stage (None: IR-101's). Returns the ConsisID-preview folder."""
    from consisid_core.demo import face_onnx
    from consisid_core.metrics import files
    from consisid_core.metrics.inception import INCEPTION_FILE
    from consisid_core.metrics.ir101 import IR101_FILE, IR101_UNITS, IRBackbone

    face_dir = Path(root) / "consisid" / "ConsisID-preview" / "face_encoder"
    buffalo = face_dir / "models" / "buffalo_l"
    buffalo.mkdir(parents=True)
    rng = np.random.default_rng(0)
    face_onnx.write_detector(buffalo / files.BUFFALO_DET_FILE, rng)
    face_onnx.write_recognizer(buffalo / files.BUFFALO_REC_FILE, rng)
    ir_shapes = shapes_of(IRBackbone(IR101_UNITS if ir_units is None else ir_units))
    torch.save(random_state(ir_shapes, seed=1), face_dir / IR101_FILE)
    eval_dir = Path(root) / "consisid" / "eval"
    eval_dir.mkdir(parents=True)
    torch.save(random_state(inception_file_shapes(), seed=2, gain=2.0), eval_dir / INCEPTION_FILE)
    write_clip(eval_dir / files.CLIP_DIR, full=full_clip)
    return face_dir.parent


def write_light_models(root: Path) -> Path:
    """Only the tiny buffalo_l recogniser and a tiny CLIP folder."""
    from consisid_core.demo import face_onnx

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    face_onnx.write_recognizer(root / "w600k_r50.onnx", np.random.default_rng(0))
    write_clip(root / "clip-vit-base-patch32")
    return root
