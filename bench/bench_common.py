"""What every bench script shares: the repository root on sys.path (the one place it is added), the table row,
the check's context, timing and memory helpers and one encode + denoise with our engine or diffusers'.

`python bench/x.py` puts bench/ on sys.path, not the repository root; importing this module adds the root so
`consisid_core` imports. Nothing here imports another bench script (no cycles) or anything under tests/.
"""

from __future__ import annotations

import gc
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PROMPT = "A person smiles at the camera in a sunlit park; the camera slowly pushes in."
SEED = 42
GUIDANCE = 6.0

# ---- table rows ---------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table.

    Speed rows: a figure of ours and of diffusers (`theirs`, None without a counterpart); `compare` makes a worse
    figure count on CUDA. Correctness rows: `ours` is an error figure that must not exceed `limit`."""

    name: str
    unit: str
    ours: float | None
    theirs: float | None = None
    compare: bool = True
    note: str = ""
    kind: str = "speed"  # "correctness" or "speed"
    limit: float | None = None
    status: str = "ok"  # ok, FAILED, skipped, error

    @property
    def ratio(self) -> float | None:
        return None if not self.ours or not self.theirs else self.ours / self.theirs

    @property
    def failed(self) -> bool:
        return self.status in ("FAILED", "error")


def check_row(name: str, error: float | None, limit: float, note: str = "", unit: str = "rel") -> Row:
    """A correctness row: FAILED when `error` is missing, not a number or above `limit`."""
    bad = error is None or math.isnan(error) or error > limit
    return Row(name, unit, error, None, compare=False, note=note, kind="correctness", limit=limit,
               status="FAILED" if bad else "ok")


def skipped(name: str, reason: str, kind: str = "speed") -> Row:
    return Row(name, "", None, None, compare=False, note=reason, kind=kind, status="skipped")


def relative_error(got: Any, want: Any, null: Any = None) -> float:
    """||got - want|| / ||want - null|| in float32 (inf for different shapes).

    `null`: the latents of the same run with the transformer's output zeroed, so the error is relative to what the
    model contributed rather than to the noise the latents start from (None: relative to ||want||)."""
    if got.shape != want.shape:
        return math.inf
    got, want = got.float(), want.float()
    scale = want if null is None else want - null.float()
    return ((got - want).norm() / scale.norm().clamp(min=1e-30)).item()


# ---- context and runs ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One encode + denoise: the latents (float32, on the CPU) and its figures."""

    latents: Any
    step_s: float
    peak_vram_gb: float | None
    wall_s: float
    steps: int
    note: str = ""


@dataclass
class Context:
    """Shared state of one check: settings, the model folder, runs that several rows reuse, and the clock."""

    device: str
    profile: Any
    folder: Path
    steps: int
    deadline_s: float = math.inf
    started: float = field(default_factory=time.perf_counter)
    runs: dict = field(default_factory=dict)  # key -> Run
    engines: dict = field(default_factory=dict)  # "bf16" / "fp8": engines kept for later rows

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def remaining(self) -> float:
        return self.deadline_s - self.elapsed()

    def launch_timeout(self, margin: float = 5.0, floor: float = 10.0) -> float:
        """Time-out for a child process: what is left of the budget (never less than `floor`)."""
        left = self.remaining()
        return max(floor, left - margin) if math.isfinite(left) else 3600.0


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> int:
    """Free what can be freed and restart the peak counter; returns the bytes still allocated (the baseline)."""
    import torch

    gc.collect()
    if not device.startswith("cuda"):
        return 0
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def peak_gb(device: str, baseline: int) -> float | None:
    """Peak CUDA memory allocated since `reset_peak`, above what was already allocated then."""
    import torch

    return (torch.cuda.max_memory_allocated() - baseline) / 1024**3 if device.startswith("cuda") else None


def step_seconds(stamps: list[float]) -> float:
    """Mean time per step after the first (the first one includes warm-up)."""
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return sum(gaps) / len(gaps) if gaps else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def inputs(profile: Any) -> tuple:
    """(face image, id_cond, EVA hidden states): the same random identity for every run."""
    import torch
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    lfe = profile.transformer
    id_cond = torch.randn(1, lfe["LFE_id_dim"], generator=gen)
    hidden = [torch.randn(1, profile.eva_tokens, lfe["LFE_vit_dim"], generator=gen) for _ in range(lfe["LFE_num_scale"])]
    face = Image.open(REPO / "consisid_core" / "assets" / "default_face.png").convert("RGB")
    return face, id_cond, hidden


def engine_denoise(ctx: Context, engine: Any, steps: int, cache: Any = None, baseline: int | None = None) -> Run:
    """Encode + denoise (no decode) with our engine, noise from a generator on the device (diffusers' way).

    `baseline`: the allocated bytes before the engine was loaded (its weights then count in the peak)."""
    baseline = reset_peak(ctx.device) if baseline is None else baseline
    face, id_cond, hidden = inputs(ctx.profile)
    stamps: list[float] = []
    start = time.perf_counter()
    text = engine.encode_text(PROMPT, "")
    global_cond = engine.encode_global(face, None, ctx.profile.height, ctx.profile.width)
    local = engine.encode_local(id_cond, hidden)

    def tick(step, total, latents):
        sync(ctx.device)
        stamps.append(time.perf_counter())

    video = engine.denoise(text, global_cond, local, num_frames=ctx.profile.frames, num_inference_steps=steps,
                           guidance_scale=GUIDANCE, seed=SEED, callback=tick, cache=cache, noise_device="gpu")
    sync(ctx.device)
    return Run(video.latents.detach().float().cpu(), step_seconds(stamps), peak_gb(ctx.device, baseline),
               time.perf_counter() - start, steps)


def load_ours(ctx: Context, mode: str = "none", **kwargs: Any) -> Any:
    import consisid_core

    return consisid_core.load_engine(ctx.folder, device=ctx.device, dtype="bf16", memory_mode=mode,
                                     noise_device="gpu", **kwargs)


def set_fast_fp8(engine: Any, fast: bool) -> None:
    """Switch the fp8 block linears between upcast matmuls and torch._scaled_mm."""
    from consisid_core.runtime.fp8 import FP8Linear

    for module in engine.transformer.modules():
        if isinstance(module, FP8Linear):
            module.fast = fast


def get_run(ctx: Context, key: tuple) -> Run:
    """The run `key` names, made once and reused by every row that needs it.

    ("diffusers", mode); ("ours", mode) for the memory modes (the mode-none engine is kept for later rows);
    ("ours", "fp8") loads with fp8 block weights (kept); ("ours", "fp8_fast") switches that engine to _scaled_mm."""
    if key in ctx.runs:
        return ctx.runs[key]
    impl, variant = key
    if impl == "diffusers":
        run = run_theirs(ctx, variant, ctx.steps)
    elif variant == "null":
        run = _null_run(ctx)
    elif variant == "fp8_fast":
        get_run(ctx, ("ours", "fp8"))
        engine = ctx.engines["fp8"]
        set_fast_fp8(engine, True)
        run = engine_denoise(ctx, engine, ctx.steps)
    else:
        baseline = reset_peak(ctx.device)
        if variant == "fp8":
            engine = load_ours(ctx, weight_dtype="fp8_e4m3fn")
        else:
            engine = load_ours(ctx, variant)
        run = engine_denoise(ctx, engine, ctx.steps, baseline=baseline)
        if variant in ("none", "fp8"):
            ctx.engines["bf16" if variant == "none" else "fp8"] = engine
        del engine
        reset_peak(ctx.device)
    ctx.runs[key] = run
    return run


def _null_run(ctx: Context) -> Run:
    """The mode-none engine with `proj_out` zeroed (restored after): the latents the scheduler and noise alone give."""
    get_run(ctx, ("ours", "none"))
    proj = ctx.engines["bf16"].transformer.proj_out
    saved = [t.detach().clone() for t in (proj.weight, proj.bias)]
    try:
        for t in (proj.weight, proj.bias):
            t.data.zero_()
        return engine_denoise(ctx, ctx.engines["bf16"], ctx.steps)
    finally:
        for t, old in zip((proj.weight, proj.bias), saved):
            t.data.copy_(old)


def model_error(ctx: Context, got: Run, want: Run) -> float:
    """`got` vs `want` relative to the model's contribution to `want` (see `relative_error`)."""
    return relative_error(got.latents, want.latents, get_run(ctx, ("ours", "null")).latents)


def run_theirs(ctx: Context, mode: str, steps: int) -> Run:
    """The same with diffusers' ConsisIDPipeline (output_type='latent': no decode), generator on the device."""
    import torch
    from diffusers import ConsisIDPipeline

    baseline = reset_peak(ctx.device)
    face, id_cond, hidden = inputs(ctx.profile)
    pipe = ConsisIDPipeline.from_pretrained(str(ctx.folder), torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    if mode == "none" or not ctx.cuda:
        pipe.to(ctx.device)
    elif mode == "model_offload":
        pipe.enable_model_cpu_offload(device=ctx.device)
    else:
        pipe.enable_sequential_cpu_offload(device=ctx.device)
    stamps: list[float] = []

    def tick(pipeline, i, t, kwargs):
        sync(ctx.device)
        stamps.append(time.perf_counter())
        return {}

    start = time.perf_counter()
    generator = torch.Generator(ctx.device).manual_seed(SEED)
    out = pipe(image=face, prompt=PROMPT, negative_prompt="", height=ctx.profile.height, width=ctx.profile.width,
               num_frames=ctx.profile.frames, num_inference_steps=steps, guidance_scale=GUIDANCE, generator=generator,
               id_cond=id_cond.to(ctx.device), id_vit_hidden=[h.to(ctx.device) for h in hidden], output_type="latent",
               max_sequence_length=ctx.profile.text_len, callback_on_step_end=tick)
    sync(ctx.device)
    run = Run(out.frames.detach().float().cpu(), step_seconds(stamps), peak_gb(ctx.device, baseline),
              time.perf_counter() - start, steps)
    pipe.maybe_free_model_hooks()
    del pipe, out
    reset_peak(ctx.device)
    return run


def quiet() -> None:
    """No progress bars from diffusers / transformers."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
