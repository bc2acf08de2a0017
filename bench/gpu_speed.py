"""The speed section of bench/gpu_check.py: TeaCache 0.1 / 0.15 / 0.2, fp8 weight storage, fast fp8 and compiled
blocks, all on ONE loaded engine (loads are the expensive part of the 8-minute budget).

Order: TeaCache rows on the model-dtype weights; then the blocks converted to fp8 in place (fp8 rows); then the
fast fp8 matmuls (where the GPU has fp8 tensor cores); then those blocks compiled. Random weights: TeaCache
skips every step but the first and last (the untrained time embedding jumps), so its rows show what a skipped
step costs, not the real checkpoint's speed-up.
"""

from __future__ import annotations

import time

TEACACHE_STEPS = 10
THRESHOLDS = (0.1, 0.15, 0.2)


def _denoise(ctx, engine, steps: int, cache=None) -> tuple[float, float]:
    """(seconds per step after the first, wall seconds of the whole denoise)."""
    from gpu_check import PROMPT, _inputs, _step_seconds, _sync

    face, id_cond, hidden = _inputs(ctx.profile)
    text = engine.encode_text(PROMPT, "")
    global_cond = engine.encode_global(face, None, ctx.profile.height, ctx.profile.width)
    local = engine.encode_local(id_cond, hidden)
    stamps: list[float] = []

    def tick(step, total, latents):
        _sync(ctx.device)
        stamps.append(time.perf_counter())

    start = time.perf_counter()
    engine.denoise(text, global_cond, local, num_frames=ctx.profile.frames, num_inference_steps=steps,
                   guidance_scale=6.0, seed=42, callback=tick, cache=cache)
    _sync(ctx.device)
    return _step_seconds(stamps), time.perf_counter() - start


def row_speed(ctx) -> list:
    import torch

    import consisid_core
    from consisid_core.engine.compile_blocks import compile_blocks, toolchain_problem
    from consisid_core.engine.fp8 import FP8Linear, apply_weight_dtype, weight_bytes, weight_dtype_problem
    from gpu_check import Row, _free, _peak_gb, _reset_peak, _run

    base_step = _run(ctx, "diffusers", "none")["step_s"]
    _free(ctx)
    engine = consisid_core.load_engine(ctx.folder, device=ctx.device, dtype="bf16", memory_mode="none",
                                       noise_device="gpu")
    rows = []
    _, plain = _denoise(ctx, engine, TEACACHE_STEPS)
    for threshold in THRESHOLDS:
        cache = consisid_core.TeaCache(threshold)
        _, wall = _denoise(ctx, engine, TEACACHE_STEPS, cache)
        rows.append(Row(f"TeaCache {threshold:g} ({TEACACHE_STEPS} steps, wall)", "s", wall, plain, compare=False,
                        note=f"vs no cache; computed {cache.stats['computed']}/{TEACACHE_STEPS} (random weights)"))

    bf16_bytes = weight_bytes(engine.transformer)
    apply_weight_dtype(engine.transformer, "fp8_e4m3fn")
    baseline = _reset_peak(ctx.device)
    step, _ = _denoise(ctx, engine, ctx.steps)
    rows.append(Row("time per step (fp8_e4m3fn, upcast)", "s", step, base_step, compare=False,
                    note=f"transformer {bf16_bytes / 1024**3:.1f} -> {weight_bytes(engine.transformer) / 1024**3:.1f} GB"))
    rows.append(Row("peak VRAM above weights (fp8_e4m3fn)", "GB", _peak_gb(ctx.device, baseline), None, compare=False))

    fast_problem = weight_dtype_problem("fp8_e4m3fn_fast", torch.device(ctx.device))
    if fast_problem is None:
        for module in engine.transformer.modules():
            if isinstance(module, FP8Linear):
                module.fast = True
        step, _ = _denoise(ctx, engine, ctx.steps)
        rows.append(Row("time per step (fp8_e4m3fn_fast, _scaled_mm)", "s", step, base_step, compare=False,
                        note="vs diffusers bf16"))
    else:
        rows.append(Row("time per step (fp8_e4m3fn_fast)", "s", None, base_step, compare=False, note="not usable here"))

    eager_step = step
    problem = toolchain_problem(torch.device(ctx.device))
    if not ctx.cuda:
        rows.append(Row("time per step (compiled blocks)", "s", None, None, compare=False,
                        note="skipped in the CPU smoke run (compiling takes minutes on a CPU)"))
    elif problem is not None:
        rows.append(Row("time per step (compiled blocks)", "s", None, None, compare=False, note=problem[:60]))
    else:
        compile_blocks(engine.transformer)
        start = time.perf_counter()
        step, _ = _denoise(ctx, engine, ctx.steps + 1)  # the first step compiles
        weights = "fp8 fast" if fast_problem is None else "fp8 upcast"
        rows.append(Row(f"time per step (compiled blocks, {weights})", "s", step, eager_step, compare=False,
                        note=f"vs the same eager; first run incl. compile {time.perf_counter() - start:.0f}s"))
    del engine
    _reset_peak(ctx.device)
    return rows
