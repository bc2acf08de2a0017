"""The recipe's settings and its per-sample random choices (mask loss, cross-face, dropouts, noise levels)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

import torch

from .. import validate
from ..errors import UnsupportedInputError

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # the reference's LoRA targets (in the DiT blocks)


# TrainConfig field -> the train command's option (messages name the option a user typed)
FLAGS = {"learning_rate": "--lr", "validate_every": "--validate", "lr_cycles": "lr_cycles"}


def _flag(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


@dataclass
class TrainConfig:
    """Every training setting; saved into each checkpoint so a resume can check it continues the same run."""

    mode: str = "lora"  # "lora" or "full"
    lora_rank: int = 128
    lora_alpha: int = 128
    lora_face: bool = False  # also LoRA on the perceiver cross-attentions
    max_steps: int = 1800
    batch_size: int = 1  # per process
    learning_rate: float | None = None  # None: 3e-6 full, 1e-4 LoRA
    face_lr_mult: float = 1.0  # the reference's is_diff_lr uses 10 for the perceiver cross-attentions
    warmup_steps: int = 200
    lr_cycles: int = 1
    weight_decay: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.95)
    max_grad_norm: float = 1.0
    mask_prob: float = 0.5  # alpha: dynamic mask loss
    cross_face_prob: float = 0.5  # beta: dynamic cross-face
    image_dropout: float = 0.0  # probability of zeroing the face-image latents
    text_dropout: float = 0.1  # probability of the empty caption
    image_noise_mean: float = -3.0  # conditioning image noise sigma = exp(N(mean, std))
    image_noise_std: float = 0.5
    coarse_steps: int | None = None  # None: the first half of the run is the coarse stage
    seed: int = 42
    mixed_precision: str = "auto"  # "auto" (bf16 on GPU, no on CPU), "bf16", "fp16", "no"
    gradient_checkpointing: bool = False
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    validate_every: int = 0

    def __post_init__(self) -> None:
        """Every number finite and in range (the message names the train option and the range)."""
        if self.mode not in ("lora", "full"):
            raise UnsupportedInputError(f"mode must be 'lora' or 'full'; got {self.mode!r}")
        for name in ("mask_prob", "cross_face_prob", "image_dropout", "text_dropout"):
            validate.check_number(getattr(self, name), _flag(name), 0.0, 1.0, hint="a probability")
        for name in ("max_steps", "batch_size", "lora_rank", "checkpoint_every", "lr_cycles"):
            validate.check_whole(getattr(self, name), _flag(name), 1)
        for name in ("warmup_steps", "keep_checkpoints", "validate_every"):
            validate.check_whole(getattr(self, name), _flag(name), 0)
        validate.check_number(self.lora_alpha, _flag("lora_alpha"), 0.0, low_open=True,
                              hint="the LoRA update is scaled by alpha / rank; default: the rank")
        if self.coarse_steps is not None:
            validate.check_whole(self.coarse_steps, _flag("coarse_steps"), 0)
        if self.learning_rate is not None:
            validate.check_number(self.learning_rate, _flag("learning_rate"), 0.0, 1.0, low_open=True,
                                  hint="1e-4 for LoRA, 3e-6 full")
        validate.check_number(self.face_lr_mult, _flag("face_lr_mult"), 0.0, 1000.0, low_open=True)
        for name in ("weight_decay", "max_grad_norm", "image_noise_std"):
            validate.check_number(getattr(self, name), name, 0.0)
        validate.check_number(self.image_noise_mean, "image_noise_mean")
        self.adam_betas = tuple(self.adam_betas)
        for beta in self.adam_betas:
            validate.check_number(beta, "adam_betas", 0.0, 1.0)

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return 3e-6 if self.mode == "full" else 1e-4

    @property
    def coarse_until(self) -> int:
        """Steps [0, coarse_until) are the coarse stage (global conditioning only)."""
        return self.max_steps // 2 if self.coarse_steps is None else max(0, int(self.coarse_steps))

    def stage(self, step: int) -> str:
        """'coarse' (global facial features only, local extractor bypassed and frozen) or 'fine' (both)."""
        return "coarse" if step < self.coarse_until else "fine"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["adam_betas"] = list(self.adam_betas)
        return data


def sample_generator(seed: int, step: int, index: int) -> torch.Generator:
    """The generator of one sample of one step: the same draws whatever the process count or batch split."""
    digest = hashlib.sha256(f"{seed}:{step}:{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


@dataclass(frozen=True)
class SampleDraws:
    """The random choices of one training sample."""

    timestep: int
    use_mask: bool
    cross_face: bool
    drop_image: bool
    drop_text: bool
    image_sigma: float


def draw(config: TrainConfig, generator: torch.Generator, num_train_timesteps: int) -> SampleDraws:
    """Draw one sample's choices in a fixed order from its own generator."""
    u = torch.rand(4, generator=generator).tolist()
    timestep = int(torch.randint(0, num_train_timesteps, (1,), generator=generator))
    log_sigma = torch.randn(1, generator=generator).item() * config.image_noise_std + config.image_noise_mean
    return SampleDraws(
        timestep=timestep,
        use_mask=u[0] < config.mask_prob,
        cross_face=u[1] < config.cross_face_prob,
        drop_image=u[2] < config.image_dropout,
        drop_text=u[3] < config.text_dropout,
        image_sigma=math.exp(log_sigma),
    )
