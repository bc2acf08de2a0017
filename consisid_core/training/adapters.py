"""What a run trains: LoRA adapters (peft, diffusers format on disk) or every weight; face-module groups."""

from __future__ import annotations

from pathlib import Path

import torch

from ..output_paths import replace_folder_through_partial, write_through_partial
from .recipe import LORA_TARGETS, TrainConfig

FACE_MODULES = ("local_facial_extractor", "perceiver_cross_attention")
LORA_FILE = "pytorch_lora_weights.safetensors"


def lora_target_regex(face: bool) -> str:
    """peft target: the DiT blocks' attention projections, and optionally the perceiver cross-attentions."""
    block = r"transformer_blocks\.\d+\.attn1\.(" + "|".join(t.replace(".", r"\.") for t in LORA_TARGETS) + ")"
    if face:
        return rf"^(?:{block}|perceiver_cross_attention\.\d+\.(to_q|to_kv|to_out))$"
    return rf"^{block}$"


def setup_trainable(transformer, config: TrainConfig) -> None:
    """Freeze the model, then add LoRA adapters (LoRA mode) or unfreeze everything (full mode)."""
    transformer.requires_grad_(False)
    if config.mode == "full":
        transformer.requires_grad_(True)
        return
    from peft import LoraConfig

    torch.manual_seed(config.seed)  # LoRA A matrices start random: seeded
    transformer.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, init_lora_weights=True,
                                       target_modules=lora_target_regex(config.lora_face)))
    for param in transformer.parameters():  # trainable LoRA weights in float32 even over a bf16 base
        if param.requires_grad:
            param.data = param.data.float()


def is_face_param(name: str) -> bool:
    return name.split(".")[0] in FACE_MODULES or any(f".{m}." in name for m in FACE_MODULES)


def trainable_named(transformer) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in transformer.named_parameters() if p.requires_grad]


def param_groups(transformer, config: TrainConfig) -> list[dict]:
    """One group, or (is_diff_lr) the perceiver cross-attentions at lr x face_lr_mult and the rest at lr."""
    named = trainable_named(transformer)
    if config.face_lr_mult == 1.0:
        return [{"params": [p for _, p in named], "lr": config.lr}]
    face = [p for n, p in named if "perceiver_cross_attention" in n]
    rest = [p for n, p in named if "perceiver_cross_attention" not in n]
    return [g for g in ({"params": face, "lr": config.lr * config.face_lr_mult}, {"params": rest, "lr": config.lr})
            if g["params"]]


def save_lora(transformer, folder: Path) -> Path:
    """`folder/pytorch_lora_weights.safetensors` in the diffusers format (ConsisIDPipeline.load_lora_weights reads it)."""
    from diffusers import ConsisIDPipeline
    from peft.utils import get_peft_model_state_dict

    state = {k: v.detach().float().cpu().contiguous() for k, v in get_peft_model_state_dict(transformer).items()}
    config = transformer.peft_config["default"]

    def _write(partial: Path) -> None:  # written under a partial name, then renamed (never half a file)
        try:
            ConsisIDPipeline.save_lora_weights(str(folder), transformer_lora_layers=state, weight_name=partial.name,
                                               transformer_lora_adapter_metadata=config.to_dict(), safe_serialization=True)
        except TypeError:  # diffusers < 0.35 stores no alpha: fold alpha / rank into B so loaders get the same update
            scale = config.lora_alpha / config.r
            folded = {k: (v * scale if ".lora_B." in k else v) for k, v in state.items()}
            ConsisIDPipeline.save_lora_weights(str(folder), transformer_lora_layers=folded, weight_name=partial.name,
                                               safe_serialization=True)

    return write_through_partial(Path(folder) / LORA_FILE, _write, overwrite=True)


def save_full(transformer, folder: Path) -> Path:
    """A `transformer/` folder in the official layout (config.json + safetensors shards + index)."""
    return replace_folder_through_partial(Path(folder) / "transformer", lambda partial: transformer.save_pretrained(
        str(partial), safe_serialization=True, max_shard_size="5GB"))
