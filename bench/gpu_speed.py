"""The speed rows of bench/gpu_check.py: load time, step time and peak VRAM per memory mode against diffusers,
fp8 step times, attention backends, TeaCache and compiled blocks (last: compiling is the slowest thing here).

Every row reuses the runs the correctness rows already made where it can (`get_run`), and times at least 3 steps
(the first step of a run is warm-up and is not timed). Random weights: TeaCache skips every step but the first and
last (the untrained time embedding jumps), so its rows show what a skipped step costs, not the real speed-up.

    python bench/gpu_speed.py --load ours FOLDER DEVICE     # one load in this fresh process (used by row_load)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench_common import Context, Row, engine_denoise, get_run, quiet, reset_peak, skipped, sync

THRESHOLDS = (0.1, 0.15, 0.2)
NAMES = {"none": ".to(device)", "model_offload": "enable_model_cpu_offload",
         "sequential_offload": "enable_sequential_cpu_offload"}


def load_in_subprocesses(ctx: Context, impls: tuple[str, ...]) -> list[dict]:
    """Load (and place on the device) in a fresh process each, one after the other: wall time and peak RSS."""
    results = []
    for impl in impls:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--load", impl, str(ctx.folder), ctx.device]
        timeout = ctx.launch_timeout()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"loading with {impl} timed out after {timeout:.0f}s") from None
        if done.returncode != 0:
            raise RuntimeError(f"loading with {impl} failed:\n{done.stderr[-2000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def _load_child(impl: str, folder: str, device: str) -> None:
    import torch
    from diffusers import AutoencoderKLCogVideoX, ConsisIDPipeline, ConsisIDTransformer3DModel  # noqa: F401
    from transformers import T5EncoderModel  # noqa: F401

    import consisid_core.engine.loading  # imports are not load time

    quiet()
    start = time.perf_counter()
    if impl == "ours":
        consisid_core.engine.loading.load_engine(folder, device=device, dtype="bf16", memory_mode="none")
    else:
        ConsisIDPipeline.from_pretrained(folder, torch_dtype=torch.bfloat16).to(device)
    sync(device)
    seconds = time.perf_counter() - start
    print(json.dumps({"load_s": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}))


def row_load(ctx: Context) -> list[Row]:
    ours, theirs = load_in_subprocesses(ctx, ("ours", "diffusers"))
    return [Row("load time (to device)", "s", ours["load_s"], theirs["load_s"]),
            Row("peak host RAM while loading", "GB", ours["peak_rss_gb"], theirs["peak_rss_gb"])]


def row_step_time(ctx: Context) -> list[Row]:
    theirs = get_run(ctx, ("diffusers", "none"))
    ours = get_run(ctx, ("ours", "none"))
    return [Row("time per step (none, sdpa)", "s", ours.step_s, theirs.step_s, note=f"{ours.steps - 1} timed steps"),
            Row("peak VRAM (none)", "GB", ours.peak_vram_gb, theirs.peak_vram_gb, compare=ctx.cuda,
                note="vs .to(device)")]


def row_memory_modes(ctx: Context) -> list[Row]:
    """Ours per offload mode (runs of the correctness rows) against diffusers' offload (CUDA only)."""
    rows = []
    for mode in ("model_offload", "sequential_offload"):
        ours = get_run(ctx, ("ours", mode))
        theirs = get_run(ctx, ("diffusers", mode)) if ctx.cuda else None
        note = f"vs {NAMES[mode]}" if theirs else "diffusers' offload needs CUDA"
        rows.append(Row(f"time per step ({mode})", "s", ours.step_s, theirs and theirs.step_s,
                        compare=theirs is not None, note=note))
        rows.append(Row(f"peak VRAM ({mode})", "GB", ours.peak_vram_gb, theirs and theirs.peak_vram_gb,
                        compare=theirs is not None, note=note))
    return rows


def row_fp8_speed(ctx: Context) -> list[Row]:
    import torch

    from consisid_core.runtime.fp8 import weight_bytes, weight_dtype_problem

    base = get_run(ctx, ("ours", "none"))
    fp8 = get_run(ctx, ("ours", "fp8"))
    bf16_gb = weight_bytes(ctx.engines["bf16"].transformer) / 1024**3
    fp8_gb = weight_bytes(ctx.engines["fp8"].transformer) / 1024**3
    rows = [Row("time per step (fp8_e4m3fn, upcast)", "s", fp8.step_s, base.step_s, compare=False,
                note=f"vs ours bf16; transformer {bf16_gb:.2f} -> {fp8_gb:.2f} GB"),
            Row("peak VRAM (fp8_e4m3fn)", "GB", fp8.peak_vram_gb, base.peak_vram_gb, compare=False, note="vs ours bf16")]
    problem = weight_dtype_problem("fp8_e4m3fn_fast", torch.device(ctx.device))
    if problem is not None and ctx.cuda:
        rows.append(skipped("time per step (fp8_e4m3fn_fast)", problem[:70]))
    else:
        fast = get_run(ctx, ("ours", "fp8_fast"))
        rows.append(Row("time per step (fp8_e4m3fn_fast, _scaled_mm)", "s", fast.step_s, base.step_s, compare=False,
                        note="vs ours bf16" + ("" if ctx.cuda else "; CPU _scaled_mm")))
    return rows


def row_attention(ctx: Context) -> list[Row]:
    """Each importable attention backend on the kept mode-none engine, against diffusers' sdpa."""
    import torch

    from consisid_core.runtime.attention import attention_problem, available_backends

    base = get_run(ctx, ("diffusers", "none")).step_s if ("diffusers", "none") in ctx.runs else None
    get_run(ctx, ("ours", "none"))
    engine = ctx.engines["bf16"]
    rows = []
    try:
        for backend in available_backends():
            if backend == "sdpa":
                continue
            name = f"time per step (attention {backend})"
            problem = attention_problem(backend, torch.device(ctx.device), torch.bfloat16)
            if problem is not None:
                rows.append(skipped(name, "not usable here"))
                continue
            if backend == "sdpa_math" and ctx.profile.name == "full":  # [2, 48, 17776, 17776] scores: ~60 GB
                rows.append(skipped(name, "skipped: materialises the attention matrix"))
                continue
            if ctx.remaining() < 2 * ctx.runs[("ours", "none")].wall_s:
                rows.append(skipped(name, "skipped: no time left (--deadline)"))
                continue
            engine.attention = backend
            try:
                run = engine_denoise(ctx, engine, ctx.steps)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # e.g. a kernel this GPU lacks
                rows.append(skipped(name, f"failed: {str(exc).splitlines()[0][:60]}"))
                reset_peak(ctx.device)
                continue
            rows.append(Row(name, "s", run.step_s, base, compare=False, note="vs diffusers sdpa"))
    finally:
        engine.attention = "sdpa"
    return rows


def row_teacache(ctx: Context) -> list[Row]:
    import consisid_core

    get_run(ctx, ("ours", "none"))
    engine = ctx.engines["bf16"]
    steps = max(5, ctx.steps)
    plain = engine_denoise(ctx, engine, steps).wall_s
    rows = []
    for threshold in THRESHOLDS:
        cache = consisid_core.TeaCache(threshold)
        wall = engine_denoise(ctx, engine, steps, cache=cache).wall_s
        rows.append(Row(f"TeaCache {threshold:g} ({steps} steps, wall)", "s", wall, plain, compare=False,
                        note=f"vs no cache; computed {cache.stats['computed']}/{steps} (random weights)"))
    return rows


def row_compile(ctx: Context) -> list[Row]:
    """Compiled blocks on the kept fp8 engine (fast matmuls where the GPU has them), against the same eager."""
    import torch

    from consisid_core.runtime.compile_blocks import compile_blocks, toolchain_problem

    name = "time per step (compiled blocks)"
    if not ctx.cuda:
        return [skipped(name, "skipped in the CPU smoke run (compiling takes minutes on a CPU)")]
    problem = toolchain_problem(torch.device(ctx.device))
    if problem is not None:
        return [skipped(name, problem[:70])]
    eager = get_run(ctx, ("ours", "fp8_fast")) if ("ours", "fp8_fast") in ctx.runs else get_run(ctx, ("ours", "fp8"))
    engine = ctx.engines["fp8"]
    compile_blocks(engine.transformer)
    start = time.perf_counter()
    run = engine_denoise(ctx, engine, ctx.steps + 1)  # the first step compiles
    weights = "fp8 fast" if ("ours", "fp8_fast") in ctx.runs else "fp8 upcast"
    return [Row(f"{name[:-1]}, {weights})", "s", run.step_s, eager.step_s, compare=False,
                note=f"vs the same eager; first run incl. compile {time.perf_counter() - start:.0f}s")]


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--load":
        _load_child(*sys.argv[2:])
    else:
        sys.exit(__doc__)
