"""The training loop: the paper's recipe on diffusers' ConsisIDTransformer3DModel, through our one block loop.

Distribution (data parallel, DeepSpeed) is accelerate's: the same function runs under `accelerate launch`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..engine.rotary import rotary_embeddings
from ..engine.transformer_forward import transformer_forward
from ..errors import ConsisIDError
from . import checkpoints
from .adapters import is_face_param, param_groups, save_full, save_lora, setup_trainable, trainable_named
from .components import load_scheduler, load_transformer, load_vae, model_files, model_info
from .dataset import ClipDataset, collate
from .inputs import Batch, make_batch
from .losses import batch_loss, per_element_loss
from .recipe import TrainConfig

EVAL_OFFSET = 10**9  # evaluation draws use positions no training step reaches


class TrainingModel(torch.nn.Module):
    """The transformer plus the face stage switch, as one module accelerate can wrap (DDP calls its forward)."""

    def __init__(self, transformer, face_scale: float) -> None:
        super().__init__()
        self.transformer = transformer
        self.face_scale = face_scale

    def forward(self, model_input, prompt_embeds, timesteps, id_cond, id_vit_hidden, rotary, use_face: bool):
        tokens = self.transformer.local_facial_extractor(id_cond, list(id_vit_hidden)) if use_face else None
        return transformer_forward(self.transformer, model_input, prompt_embeds, timesteps, rotary, tokens, self.face_scale)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    losses: list[float] = field(default_factory=list)
    lora_path: Path | None = None
    transformer_dir: Path | None = None
    seconds_per_step: float = 0.0
    finished: bool = False


class _Positions(torch.utils.data.Dataset):
    def __init__(self, dataset: ClipDataset, start: int, stop: int) -> None:
        self.dataset, self.start, self.stop = dataset, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> dict:
        return self.dataset[self.start + index]


def _mixed_precision(config: TrainConfig) -> str:
    if config.mixed_precision != "auto":
        return config.mixed_precision
    return "bf16" if torch.cuda.is_available() else "no"


class Trainer:
    """Holds the loaded parts of one run; `run()` trains, `evaluate()` measures the loss on fixed draws."""

    def __init__(self, model_path: str | Path, data_dir: str | Path, run_dir: str | Path, config: TrainConfig,
                 accelerator=None, validation=None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs
        from diffusers.video_processor import VideoProcessor

        self.config = config
        self.run_dir = Path(run_dir)
        mixed = _mixed_precision(config)
        unused = config.mode == "full" or config.lora_face  # the coarse stage bypasses the face modules
        self.accelerator = accelerator or Accelerator(
            mixed_precision=mixed, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=unused)])
        files = model_files(model_path)
        self.info = model_info(files)
        self.dataset = ClipDataset(data_dir, seed=config.seed)
        self._check_dataset()
        self.run_dir.mkdir(parents=True, exist_ok=True)  # only once model and data are known to be usable
        self.weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed, torch.float32) \
            if config.mode == "lora" else torch.float32
        device = self.accelerator.device
        transformer = load_transformer(files, self.weight_dtype).to(device)
        if config.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        setup_trainable(transformer, config)
        transformer.train()
        self.transformer = transformer
        self.vae = load_vae(files, torch.float32 if device.type == "cpu" else torch.bfloat16).to(device)
        self.scheduler = load_scheduler(files)
        self.processor = VideoProcessor(vae_scale_factor=self.info.vae_spatial)
        self.optimizer = torch.optim.AdamW(param_groups(transformer, config), betas=config.adam_betas,
                                           weight_decay=config.weight_decay, eps=1e-8)
        from diffusers.optimization import get_scheduler

        self.lr_scheduler = get_scheduler("cosine_with_restarts", self.optimizer,
                                          num_warmup_steps=config.warmup_steps, num_training_steps=config.max_steps,
                                          num_cycles=config.lr_cycles)
        model = TrainingModel(transformer, self.info.face_scale)
        self.model, self.optimizer = self.accelerator.prepare(model, self.optimizer)
        latent_t = self.info.latent_frames(self.info.native_frames)
        self.rotary = rotary_embeddings(self.info, self.info.native_height, self.info.native_width, latent_t, device) \
            if self.info.rotary_positions else None
        self.face_params = [p for n, p in trainable_named(transformer) if is_face_param(n)]
        self.validation = validation  # a ValidationSetup: render a video every config.validate_every steps

    def _check_dataset(self) -> None:
        s, i = self.dataset.settings, self.info
        if (s.get("height"), s.get("width"), s.get("frames")) != (i.native_height, i.native_width, i.native_frames):
            raise ConsisIDError(
                f"the dataset was prepared for {s.get('width')}x{s.get('height')}x{s.get('frames')} but this model is "
                f"{i.native_width}x{i.native_height}x{i.native_frames}; prepare it again with this --model")

    # ---- one step -----------------------------------------------------------------------------------
    def batch(self, samples: list[dict]) -> Batch:
        return make_batch(samples, self.config, self.info, self.vae, self.processor, self.scheduler,
                          self.dataset.empty_prompt, self.accelerator.device, next(self.vae.parameters()).dtype)

    def loss(self, batch: Batch, use_face: bool) -> torch.Tensor:
        dtype = self.weight_dtype
        out = self.model(batch.model_input.to(dtype), batch.prompt_embeds.to(dtype), batch.timesteps,
                         batch.id_cond.to(dtype), [h.to(dtype) for h in batch.id_vit_hidden], self.rotary, use_face)
        return batch_loss(per_element_loss(self.scheduler, out, batch.noisy, batch.clean, batch.timesteps), batch.masks)

    @torch.no_grad()
    def evaluate(self, count: int = 8, stage: str = "fine") -> float:
        """Mean loss over `count` fixed draws (the same before and after training), this process's share."""
        losses = []
        for k in range(count):
            sample = self.dataset[k % len(self.dataset.entries)] | {"position": EVAL_OFFSET + k}
            losses.append(float(self.loss(self.batch([sample]), stage == "fine")))
        return sum(losses) / len(losses)

    # ---- the run ------------------------------------------------------------------------------------
    def run(self, resume: bool = True, stop_at: int | None = None, log: Callable[[str], None] = print) -> TrainResult:
        """Train to `config.max_steps` (or stop after step `stop_at`), checkpointing; resumes from the latest checkpoint."""
        from tqdm.auto import tqdm

        cfg, acc = self.config, self.accelerator
        global_batch = cfg.batch_size * acc.num_processes
        step, losses = 0, []
        found = checkpoints.latest(self.run_dir) if resume else None
        if found is not None:
            unwrapped = acc.unwrap_model(self.model).transformer
            state = checkpoints.load(found, unwrapped, self.optimizer, self.lr_scheduler, cfg.to_dict())
            step, losses = int(state["step"]), list(state["losses"])
            log(f"resuming from {found} (step {step})")
        if step >= cfg.max_steps:
            return self._finish(step, losses, 0.0)
        loader = torch.utils.data.DataLoader(_Positions(self.dataset, step * global_batch, cfg.max_steps * global_batch),
                                             batch_size=cfg.batch_size, shuffle=False, collate_fn=collate)
        loader = acc.prepare_data_loader(loader, device_placement=False)
        bar = tqdm(total=cfg.max_steps, initial=step, desc="training", unit="step", disable=not acc.is_local_main_process)
        started, first_step = time.perf_counter(), step
        self.model.train()
        for samples in loader:
            stage = cfg.stage(step)
            loss = self.loss(self.batch(samples), stage == "fine")
            acc.backward(loss)
            if stage == "coarse":  # the local extractor and face injections are bypassed: keep them unchanged
                for param in self.face_params:
                    param.grad = None
            if cfg.max_grad_norm > 0:
                acc.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None], cfg.max_grad_norm)
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            step += 1
            value = float(acc.reduce(loss.detach(), reduction="mean"))
            if not math.isfinite(value):
                raise ConsisIDError(f"the loss became {value} at step {step}; lower the learning rate or use bf16/fp32")
            losses.append(value)
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4g}", lr=f"{self.lr_scheduler.get_last_lr()[0]:.2e}", stage=stage)
            if step % max(1, cfg.checkpoint_every) == 0 or step == cfg.max_steps or step == stop_at:
                self._checkpoint(step, step * global_batch, losses)
            if self.validation is not None and cfg.validate_every > 0 and step % cfg.validate_every == 0:
                self._validate(step, log)
            if stop_at is not None and step >= stop_at:
                break
        bar.close()
        per_step = (time.perf_counter() - started) / max(1, step - first_step)
        if step < cfg.max_steps:
            return TrainResult(self.run_dir, step, losses, seconds_per_step=per_step)
        return self._finish(step, losses, per_step)

    def _validate(self, step: int, log: Callable[[str], None]) -> None:
        from .validation import render

        acc = self.accelerator
        if acc.is_main_process:
            transformer = acc.unwrap_model(self.model).transformer
            out = render(transformer, self.vae, self.scheduler, self.info, self.validation,
                         self.run_dir / "validation" / f"step-{step:07d}.mp4")
            log(f"validation video: {out}")
        acc.wait_for_everyone()

    def _checkpoint(self, step: int, position: int, losses: list[float]) -> None:
        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process:
            trainable = dict(trainable_named(acc.unwrap_model(self.model).transformer))
            checkpoints.save(self.run_dir, step, position, trainable, self.optimizer, self.lr_scheduler,
                             self.config.to_dict(), losses, self.config.keep_checkpoints)
        acc.wait_for_everyone()

    def _finish(self, step: int, losses: list[float], per_step: float) -> TrainResult:
        acc = self.accelerator
        result = TrainResult(self.run_dir, step, losses, seconds_per_step=per_step, finished=True)
        acc.wait_for_everyone()
        if acc.is_main_process:
            transformer = acc.unwrap_model(self.model).transformer
            if self.config.mode == "lora":
                result.lora_path = save_lora(transformer, self.run_dir)
            else:
                result.transformer_dir = save_full(transformer, self.run_dir)
            (self.run_dir / "losses.json").write_text(json.dumps({"losses": losses, "config": self.config.to_dict()}))
        acc.wait_for_everyone()
        if self.config.mode == "lora":
            result.lora_path = self.run_dir / "pytorch_lora_weights.safetensors"
        else:
            result.transformer_dir = self.run_dir / "transformer"
        return result


def train(model_path, data_dir, run_dir, config: TrainConfig, resume: bool = True, stop_at: int | None = None,
          log: Callable[[str], None] = print, validation=None) -> TrainResult:
    """Load, train and save (see Trainer.run)."""
    trainer = Trainer(model_path, data_dir, run_dir, config, validation=validation)
    return trainer.run(resume=resume, stop_at=stop_at, log=log)
