"""The parallel rows of bench/gpu_check.py: each layout that fits the visible GPUs, under torchrun.

Correctness: the layout's latents equal one device's (the mode-none run, same generator and steps). Speed: the
same launches' step times, and xDiT's own ConsisID example on the same model when xfuser imports. On CPU (smoke
mode) it runs the CFG layout on 2 gloo processes at tiny size, so the code path stays exercised; on one GPU the
section is skipped (NCCL needs one device per rank)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_common import Context, Row, Run, check_row, free_port, get_run, model_error, skipped

HERE = Path(__file__).resolve().parent
PARALLEL_TOL = 5e-2  # bf16: one branch or a token shard per rank changes the matmul shapes, hence rounding

# (label, cfg, ulysses, ring): the layouts of the ConsisID authors' xDiT table, smallest first
LAYOUTS = [("cfg2", True, 1, 1), ("ulysses2", False, 2, 1), ("ring2", False, 1, 2), ("cfg2+ulysses2", True, 2, 1),
           ("cfg2+ring2", True, 1, 2), ("cfg2+ring3", True, 1, 3)]
LAUNCH_COST = {"full": 70, "tiny": 25}  # seconds per torchrun (start, load on every rank, steps)


def launch(ctx: Context, impl: str, cfg: bool, ulysses: int, ring: int, out: Path | None = None) -> dict:
    """One torchrun of bench/parallel_step.py, its time-out what is left of the budget; rank 0's figures, or
    {"error": reason}. With `out`, rank 0 saves its latents there."""
    nproc = (2 if cfg else 1) * ulysses * ring
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(HERE / "parallel_step.py"), "--impl", impl, "--folder",
           str(ctx.folder), "--profile", ctx.profile.name, "--device", ctx.device, "--steps", str(ctx.steps),
           "--ulysses", str(ulysses), "--ring", str(ring), *(["--cfg"] if cfg else []),
           *(["--out", str(out)] if out else [])]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    timeout = ctx.launch_timeout()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = [line for line in done.stderr.splitlines() if line.strip()][-1:] or ["no output"]
    return {"error": tail[0][:120]}


def usable_layouts(ctx: Context) -> list[tuple[str, bool, int, int]]:
    """Layouts whose process count fits the devices and whose degrees split this profile's tokens."""
    import torch

    devices = torch.cuda.device_count() if ctx.cuda else 2
    p, text_len = 2, ctx.profile.text_len
    per_frame = (ctx.profile.height // 8 // p) * (ctx.profile.width // 8 // p)
    chosen = []
    for label, cfg, ulysses, ring in LAYOUTS:
        sp = ulysses * ring
        if (2 if cfg else 1) * sp > devices or per_frame % sp or text_len % sp:
            continue
        if not ctx.cuda and ring > 1:  # ring attention needs CUDA kernels
            continue
        if sp > 1 and importlib.util.find_spec("yunchang") is None:
            continue
        chosen.append((label, cfg, ulysses, ring))
    return chosen if ctx.cuda else chosen[:1]  # the CPU smoke run keeps one layout (the tests cover the others)


def _one_gpu(ctx: Context) -> bool:
    import torch

    return ctx.cuda and torch.cuda.device_count() < 2


def cost(ctx: Context) -> dict:
    """Estimated seconds of the correctness launches (one per usable layout)."""
    if _one_gpu(ctx):
        return {}
    return {ctx.profile.name: LAUNCH_COST[ctx.profile.name] * len(usable_layouts(ctx))}


def xdit_cost(ctx: Context) -> dict:
    if _one_gpu(ctx) or not ctx.cuda or importlib.util.find_spec("xfuser") is None:
        return {}
    return {ctx.profile.name: LAUNCH_COST[ctx.profile.name] * len(usable_layouts(ctx))}


def row_parallel_correct(ctx: Context) -> list[Row]:
    """Each layout's latents against one device's (the launches' step times are kept for the speed rows)."""
    if _one_gpu(ctx):
        return [skipped("parallel = one device", "skipped: one GPU visible (NCCL needs a device per rank)",
                        "correctness")]
    single = get_run(ctx, ("ours", "none"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_parallel_") as tmp:
        for label, cfg, ulysses, ring in usable_layouts(ctx):
            name = f"parallel {label} = one device"
            if ctx.remaining() < LAUNCH_COST[ctx.profile.name]:
                rows.append(skipped(name, "skipped: no time left (--deadline)", "correctness"))
                continue
            out = Path(tmp) / f"{label}.pt"
            result = launch(ctx, "ours", cfg, ulysses, ring, out)
            ctx.runs[("parallel", label)] = result
            if "error" in result or not out.exists():
                rows.append(check_row(name, None, PARALLEL_TOL, note=result.get("error", "no latents written")))
                continue
            import torch

            latents = torch.load(out, weights_only=True)
            rows.append(check_row(name, model_error(ctx, Run(latents, 0, None, 0, ctx.steps), single), PARALLEL_TOL,
                                  note=f"{(2 if cfg else 1) * ulysses * ring} processes"))
    return rows


def row_parallel_speed(ctx: Context) -> list[Row]:
    """Each layout's step time (from the correctness launches), against xDiT's example when xfuser imports."""
    if _one_gpu(ctx):
        return [skipped("time per step (parallel)", "skipped: one GPU visible")]
    single = ctx.runs.get(("ours", "none"))
    xdit = ctx.cuda and importlib.util.find_spec("xfuser") is not None
    rows = []
    for label, cfg, ulysses, ring in usable_layouts(ctx):
        ours = ctx.runs.get(("parallel", label))
        if ours is None:
            continue  # its correctness launch did not run
        theirs = launch(ctx, "xdit", cfg, ulysses, ring) if xdit else {}
        note = ours.get("error") or theirs.get("error") or ""
        if not note and single and ours.get("step_s"):
            note = f"{single.step_s / ours['step_s']:.2f}x vs 1 device"
        if not xdit:
            note = (note + "; " if note else "") + "no xDiT column (xfuser needs an accelerator)"
        rows.append(Row(f"time per step (parallel {label})", "s", ours.get("step_s"), theirs.get("step_s"),
                        compare=xdit and "step_s" in theirs, note=note))
    return rows
