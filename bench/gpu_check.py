"""One-command GPU check: correctness gates first, then speed against diffusers, compiled blocks last.

    python bench/gpu_check.py                       # one CUDA GPU, no download: 42 layers x 3072, 49 x 480 x 720
    python bench/gpu_check.py --device cpu          # the same code at tiny sizes (CI smoke test, a few minutes)
    python bench/gpu_check.py --deadline 300        # skip what will not fit in 300 s (estimates in the plan)

Writes a random model in the official layout (real transformer config and face-extractor sizes, the real CogVideoX
VAE, a 2-layer random T5 with the real 4096-wide output), prints the plan (every row with its estimated cost), then
runs the rows in order, writing the JSON after each one. Correctness rows (they gate): ours = diffusers'
ConsisIDPipeline with the same generator on the device; every memory mode = mode none; ComfyUI partial loads at two
budgets = mode none; fp8 and fast fp8 error; parallel = one device; `pytest -m gpu`. Speed rows reuse those runs
(>= 3 timed steps each) and add load time, offload modes, attention backends, TeaCache; compiled blocks last.
Exit status: 1 when a correctness row fails or any row crashes; 2 when only speed is worse than diffusers by more
than --tolerance (CUDA); 0 otherwise. Rows skipped (deadline, one GPU, no ComfyUI) say why.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from bench_common import (REPO, Context, Row, check_row, engine_denoise, get_run, load_ours, model_error, quiet,
                          reset_peak, skipped)
from random_consisid import PROFILES, write_random_model

import gpu_parallel
import gpu_speed

DEFAULT_DEADLINE = {"cuda": 480.0, "cpu": 600.0}  # seconds: 8 minutes on one H100/H200
# Errors are relative L2 of the final latents, measured against what the model contributed to them (the latents
# minus those of the same run with the transformer's output zeroed), not against the noise they start from.
BF16_TOL = 2e-2  # ours vs diffusers in bf16: same weights and noise, only op-order rounding (0 measured on CPU)
SAME_TOL = 1e-3  # memory modes / partial loads: the same kernels on the same weights; a race or dtype slip is far above
FP8_TOL = 0.15  # fp8 weights vs bf16 after all steps (one forward is ~2-3 %)
FP8_FAST_TOL = 0.1  # fp8 activations (fast path) vs the upcast fp8 path (one forward is ~2-4 %)
COMFY_BUDGETS = (1 / 3, 2 / 3)  # fractions of the transformer's bytes ComfyUI may keep on the device

# ---- estimated cost -----------------------------------------------------------------------------------------------
# Seconds per run the check makes, per profile. full: one H100/H200, guessed from the model's size (recalibrate
# from the JSON's took_s); tiny: this CPU class, measured. A row costs its runs that no earlier row made, plus `own`.
RUN_COST = {
    "full": {"setup": 35, ("diffusers", "none"): 30, ("ours", "none"): 22, ("ours", "null"): 9,
             ("ours", "model_offload"): 25, ("ours", "sequential_offload"): 35, ("ours", "fp8"): 25,
             ("ours", "fp8_fast"): 8, ("diffusers", "model_offload"): 35, ("diffusers", "sequential_offload"): 50},
    "tiny": {"setup": 8, ("diffusers", "none"): 6, ("ours", "none"): 4, ("ours", "null"): 1,
             ("ours", "model_offload"): 4, ("ours", "sequential_offload"): 4, ("ours", "fp8"): 4, ("ours", "fp8_fast"): 2,
             ("diffusers", "model_offload"): 0, ("diffusers", "sequential_offload"): 0},
}


@dataclass
class Task:
    """One step of the plan: `fn(ctx)` returns its rows; `needs` are the runs it makes or reuses."""

    name: str
    kind: str  # correctness, speed or compile
    fn: Callable[[Context], list[Row]]
    needs: tuple = ()
    own: dict = field(default_factory=dict)  # profile -> seconds beyond its runs


def estimate(task: Task, profile: str, done: set) -> float:
    """Seconds `task` should take after the runs in `done` were made."""
    costs = RUN_COST[profile]
    return task.own.get(profile, 0.0) + sum(costs.get(key, 0.0) for key in task.needs if key not in done)


# ---- correctness rows ---------------------------------------------------------------------------------------------


def row_vs_diffusers(ctx: Context) -> list[Row]:
    theirs = get_run(ctx, ("diffusers", "none"))  # first: nothing of ours is on the device while diffusers runs
    ours = get_run(ctx, ("ours", "none"))
    generator = "torch.Generator('cuda')" if ctx.cuda else "torch.Generator('cpu')"
    return [check_row("ours = diffusers ConsisIDPipeline (bf16)", model_error(ctx, ours, theirs),
                      BF16_TOL, note=f"same {generator} seed, {ctx.steps} steps")]


def memory_mode_row(mode: str) -> Callable[[Context], list[Row]]:
    def row(ctx: Context) -> list[Row]:
        ref = get_run(ctx, ("ours", "none"))
        got = get_run(ctx, ("ours", mode))
        error = model_error(ctx, got, ref)
        exact = got.latents.shape == ref.latents.shape and bool((got.latents == ref.latents).all())
        return [check_row(f"memory mode {mode} = none", error, SAME_TOL, note="bit-exact" if exact else "")]

    row.__name__ = f"row_memory_{mode}"
    return row


def comfy_model_factory(cuda: bool) -> tuple[Callable | None, str]:
    """`nodes.comfy_memory.make_comfy_model` when ComfyUI imports and the adapter provides it, else (None, why not).

    Contract: `make_comfy_model(engine, device)` returns ComfyUI's stock ModelPatcher around the engine's
    transformer; the row calls its `model_size()`, `load(device, lowvram_model_memory=budget)`, `loaded_size()`
    and `detach()`. ComfyUI comes from the environment (PYTHONPATH=<ComfyUI checkout>); both imports stay here."""
    try:
        import comfy.cli_args

        if not cuda:
            comfy.cli_args.args.cpu = True  # ComfyUI's --cpu: its memory manager would look for CUDA
        import comfy.model_management  # noqa: F401
        import comfy.model_patcher  # noqa: F401
    except Exception as exc:  # ImportError, or ComfyUI failing to start here
        return None, (f"skipped: ComfyUI is not importable ({type(exc).__name__}: {str(exc)[:50]}); "
                      "put a checkout on PYTHONPATH")
    try:
        import importlib

        comfy_ops = importlib.import_module("nodes.comfy_memory")  # ours: the repository root comes first on sys.path
    except Exception as exc:
        return None, f"skipped: nodes.comfy_memory does not import ({type(exc).__name__}: {str(exc)[:60]})"
    make = getattr(comfy_ops, "make_comfy_model", None)
    if make is None:
        return None, "skipped: nodes.comfy_memory has no make_comfy_model(engine, device)"
    return make, ""


def row_comfy_partial(ctx: Context) -> list[Row]:
    """Our transformer under ComfyUI's stock ModelPatcher, partially loaded at two budgets, vs mode none."""
    names = [f"ComfyUI partial load {fraction:.0%} = none" for fraction in COMFY_BUDGETS]
    make, why = comfy_model_factory(ctx.cuda)
    if make is None:
        return [skipped(name, why, "correctness") for name in names]
    import torch

    ref = get_run(ctx, ("ours", "none"))
    rows = []
    for name, fraction in zip(names, COMFY_BUDGETS):
        engine = load_ours(ctx, managed=True)
        patcher = make(engine, torch.device(ctx.device))
        budget = int(patcher.model_size() * fraction)
        patcher.load(torch.device(ctx.device), lowvram_model_memory=budget)  # the rest is cast on use
        loaded = patcher.loaded_size() / max(1, patcher.model_size())
        try:
            run = engine_denoise(ctx, engine, ctx.steps)
        finally:
            patcher.detach()
            del engine, patcher
            reset_peak(ctx.device)
        ctx.runs[("comfy", fraction)] = run
        rows.append(check_row(name, model_error(ctx, run, ref), SAME_TOL,
                              note=f"{loaded:.0%} of the transformer resident"))
    return rows


def comfy_cost() -> dict:
    """Two partial-load runs where ComfyUI is installed; nothing where the row will only say why it skipped."""
    import importlib.util

    return {"full": 60, "tiny": 8} if importlib.util.find_spec("comfy") is not None else {}


def row_fp8(ctx: Context) -> list[Row]:
    ref = get_run(ctx, ("ours", "none"))
    fp8 = get_run(ctx, ("ours", "fp8"))
    return [check_row("fp8_e4m3fn vs bf16", model_error(ctx, fp8, ref), FP8_TOL,
                      note=f"{ctx.profile.name} size, {ctx.steps} steps")]


def row_fp8_fast(ctx: Context) -> list[Row]:
    import torch

    from consisid_core.runtime.fp8 import weight_dtype_problem

    name = "fp8_e4m3fn_fast vs fp8_e4m3fn"
    problem = weight_dtype_problem("fp8_e4m3fn_fast", torch.device(ctx.device))
    if problem is not None and ctx.cuda:
        return [skipped(name, f"skipped: {problem[:70]}", "correctness")]
    slow = get_run(ctx, ("ours", "fp8"))
    fast = get_run(ctx, ("ours", "fp8_fast"))
    where = "CUDA _scaled_mm" if ctx.cuda else "CPU _scaled_mm (the GPU kernel is checked on CUDA)"
    return [check_row(name, model_error(ctx, fast, slow), FP8_FAST_TOL, note=where)]


def gpu_test_files() -> list[str]:
    """Test files with GPU-marked tests (collecting only these keeps the row short)."""
    files = []
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        if "mark.gpu" in path.read_text(encoding="utf-8", errors="replace"):
            files.append(str(path.relative_to(REPO)))
    return files


def row_pytest_gpu(ctx: Context) -> list[Row]:
    """`pytest -m gpu` in a child process, its time-out what is left of the budget."""
    name = "pytest -m gpu"
    files = gpu_test_files()
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", *files]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    timeout = ctx.launch_timeout()
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return [check_row(name, None, 0, note=f"timed out after {timeout:.0f}s", unit="fails")]
    summary = next((line for line in reversed(done.stdout.splitlines()) if re.search(r"\d+ (passed|failed|skipped|"
                                                                                        r"deselected|error)", line)),
                   done.stdout.strip().splitlines()[-1:] or ["no output"])
    summary = summary if isinstance(summary, str) else summary[0]
    failed = sum(int(n) for n in re.findall(r"(\d+) (?:failed|errors?)\b", summary))
    if done.returncode not in (0, 5):  # 5: nothing collected
        failed = max(failed, 1)
        print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
    return [check_row(name, float(failed), 0, note=summary.strip("= ")[:90], unit="fails")]


# ---- the plan -----------------------------------------------------------------------------------------------------


def build_plan(ctx: Context) -> list[Task]:
    """Correctness first (each reuses what an earlier one ran), then speed, compiled blocks last."""
    on, null, fp8 = ("ours", "none"), ("ours", "null"), ("ours", "fp8")
    tasks = [
        Task("ours = diffusers", "correctness", row_vs_diffusers, (("diffusers", "none"), on, null)),
        *[Task(f"memory mode {mode} = none", "correctness", memory_mode_row(mode), (on, null, ("ours", mode)))
          for mode in ("model_offload", "sequential_offload")],
        Task("ComfyUI partial loads = none", "correctness", row_comfy_partial, (on, null), comfy_cost()),
        Task("fp8 error", "correctness", row_fp8, (on, null, fp8)),
        Task("fast fp8 error", "correctness", row_fp8_fast, (on, null, fp8, ("ours", "fp8_fast"))),
        Task("parallel = one device", "correctness", gpu_parallel.row_parallel_correct, (on, null),
             gpu_parallel.cost(ctx)),
        Task("pytest -m gpu", "correctness", row_pytest_gpu, (), {"full": 75, "tiny": 10}),
        Task("load time", "speed", gpu_speed.row_load, (), {"full": 45, "tiny": 15}),
        Task("step time vs diffusers", "speed", gpu_speed.row_step_time, (("diffusers", "none"), on)),
        Task("memory modes vs diffusers", "speed", gpu_speed.row_memory_modes,
             (("ours", "model_offload"), ("ours", "sequential_offload"), ("diffusers", "model_offload"),
              ("diffusers", "sequential_offload"))),
        Task("fp8 step time", "speed", gpu_speed.row_fp8_speed, (on, fp8, ("ours", "fp8_fast"))),
        Task("attention backends", "speed", gpu_speed.row_attention, (on,), {"full": 30, "tiny": 6}),
        Task("TeaCache", "speed", gpu_speed.row_teacache, (on,), {"full": 25, "tiny": 6}),
        Task("parallel vs xDiT", "speed", gpu_parallel.row_parallel_speed, (), gpu_parallel.xdit_cost(ctx)),
        Task("compiled blocks", "compile", gpu_speed.row_compile, (fp8,), {"full": 150, "tiny": 0}),
    ]
    return tasks


def print_plan(ctx: Context, tasks: list[Task]) -> list[dict]:
    """Print every row with its estimated cost (and whether it fits the deadline); returns the plan for the JSON."""
    profile, done, clock = ctx.profile.name, set(), RUN_COST[ctx.profile.name]["setup"]
    plan = []
    deadline = "none" if math.isinf(ctx.deadline_s) else f"{ctx.deadline_s:.0f}s"
    print(f"plan: {profile} profile on {ctx.device}, {ctx.steps} steps per run ({ctx.steps - 1} timed), "
          f"deadline {deadline}; setup (random model) ~{clock:.0f}s")
    print(f"  {'#':>2}  {'kind':11} {'est s':>6} {'at s':>6}  row")
    for i, task in enumerate(tasks, 1):
        est = estimate(task, profile, done)
        done |= set(task.needs)
        clock += est
        fits = clock <= ctx.deadline_s
        plan.append({"row": task.name, "kind": task.kind, "est_s": est, "fits": fits})
        print(f"  {i:>2}  {task.kind:11} {est:>6.0f} {clock:>6.0f}  {task.name}"
              f"{'' if fits else '   (over the deadline at this estimate: will be skipped if still so)'}")
    print(f"  estimated total {clock:.0f}s", flush=True)
    return plan


# ---- report -------------------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3g}" if abs(value) < 0.01 else f"{value:.3f}"


def print_table(rows: list[Row], tolerance: float, compared: bool) -> list[Row]:
    """Print the table; return the compared speed rows where ours is worse by more than `tolerance`."""
    worse = []
    header = f"{'row':46} {'unit':>5} {'ours':>9} {'diffusers':>9} {'ratio':>6} {'limit':>7}  status  note"
    print("correctness figures: relative L2 of the final latents against what the model contributed to them")
    print(header + "\n" + "-" * len(header))
    for row in rows:
        bad = (row.kind == "speed" and compared and row.compare and row.ratio is not None
               and row.ratio > 1 + tolerance)
        if bad:
            worse.append(row)
        ratio = "" if row.ratio is None else f"{row.ratio:.3f}"
        limit = "" if row.limit is None else _fmt(row.limit)
        status = "WORSE" if bad else row.status
        print(f"{row.name[:46]:46} {row.unit:>5} {_fmt(row.ours):>9} {_fmt(row.theirs):>9} {ratio:>6} {limit:>7}  "
              f"{status:6}  {row.note}")
    return worse


class Report:
    """The JSON file, rewritten (atomically) after every row so a killed run keeps what finished."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path, self.data = path, {**header, "status": "running", "rows": [], "tasks": []}
        path.parent.mkdir(parents=True, exist_ok=True)
        self.write()

    def add(self, task: Task, rows: list[Row], est: float, took: float) -> None:
        self.data["rows"] += [{**asdict(r), "ratio": r.ratio, "task": task.name} for r in rows]
        self.data["tasks"].append({"row": task.name, "kind": task.kind, "est_s": est, "took_s": took})
        self.write()

    def write(self, **extra) -> None:
        self.data.update(extra)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)


def environment(device: str) -> dict:
    import diffusers
    import torch

    info = {"torch": torch.__version__, "diffusers": diffusers.__version__, "device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def run_tasks(ctx: Context, tasks: list[Task], report: Report) -> list[Row]:
    """Each task in order unless it no longer fits the deadline; a crash becomes an error row, not a stop."""
    rows: list[Row] = []
    done: set = set(ctx.runs)
    for task in tasks:
        est = estimate(task, ctx.profile.name, done)
        start = time.perf_counter()
        if est > ctx.remaining():
            new = [skipped(task.name, f"skipped: needs ~{est:.0f}s, {max(0, ctx.remaining()):.0f}s left (--deadline)",
                           task.kind if task.kind != "compile" else "speed")]
        else:
            try:
                new = task.fn(ctx)
            except Exception as exc:  # one broken row must not hide the others
                traceback.print_exc()
                new = [Row(task.name, "", None, None, compare=False, kind=task.kind if task.kind != "compile" else
                           "speed", note=f"crashed: {type(exc).__name__}: {exc}"[:160], status="error")]
                reset_peak(ctx.device)
        done |= set(task.needs) | set(ctx.runs)
        took = time.perf_counter() - start
        for row in new:
            if row.kind == "correctness" or row.failed:
                print(f"[{row.status}] {row.name}: {_fmt(row.ours)} (limit {_fmt(row.limit)}) {row.note}", flush=True)
        print(f"[{task.name}] {took:.1f}s (estimated {est:.0f}s), {ctx.elapsed():.0f}s elapsed", flush=True)
        rows += new
        report.add(task, new, est, took)
    return rows


def select(tasks: list[Task], only: str | None) -> list[Task]:
    """Tasks whose name contains one of the comma-separated words of --only (all when None)."""
    if not only:
        return tasks
    words = [w.strip().lower() for w in only.split(",") if w.strip()]
    return [t for t in tasks if any(w in t.name.lower() for w in words)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (full size) or cpu (tiny sizes, smoke test)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per run (the first is not timed; >= 4)")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds for the whole check; rows that will not fit are skipped "
                             "(default 480 on CUDA, 600 on CPU; 0 = no limit)")
    parser.add_argument("--only", default=None, help="run only rows whose name contains one of these words (a,b)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None, help="default: full on CUDA, tiny on CPU")
    parser.add_argument("--json", type=Path, default=Path("gpu_check.json"), help="where to write the rows")
    parser.add_argument("--tolerance", type=float, default=0.05, help="allowed speed excess over diffusers (0.05 = 5 %%)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the random model (default: temp)")
    args = parser.parse_args(argv)
    if args.steps < 4:
        parser.error("--steps must be 4 or more (3 timed steps per speed row)")

    import torch

    from consisid_core.runtime import resolve_device

    device = str(resolve_device(args.device))
    profile = PROFILES[args.profile or ("full" if device.startswith("cuda") else "tiny")]
    deadline = args.deadline if args.deadline is not None else DEFAULT_DEADLINE["cuda" if "cuda" in device else "cpu"]
    with torch.no_grad():  # not set_grad_enabled: an in-process caller (the CI smoke test) keeps its grad mode
        return check(args, device, profile, math.inf if deadline <= 0 else deadline)


def check(args, device: str, profile, deadline: float) -> int:
    """Print the plan, write the random model, run the rows (JSON after each), print the table; the exit status."""
    quiet()
    with tempfile.TemporaryDirectory(prefix="consisid_gpu_check_", dir=args.workdir) as tmp:
        folder = Path(tmp) / "ConsisID-random"
        ctx = Context(device, profile, folder, args.steps, deadline_s=deadline)
        tasks = select(build_plan(ctx), args.only)
        plan = print_plan(ctx, tasks)
        report = Report(args.json, {"environment": environment(device), "profile": profile.name, "steps": args.steps,
                                    "deadline_s": deadline if math.isfinite(deadline) else None, "plan": plan})
        t0 = time.perf_counter()
        write_random_model(folder, profile, device)
        print(f"random {profile.name} model written in {time.perf_counter() - t0:.1f}s "
              f"({profile.transformer['num_layers']} layers, width "
              f"{profile.transformer['num_attention_heads'] * profile.transformer['attention_head_dim']}, "
              f"{profile.frames}x{profile.height}x{profile.width})", flush=True)
        rows = run_tasks(ctx, tasks, report)
        ctx.engines.clear()
        reset_peak(device)
    return finish(args, ctx, rows, report)


def finish(args, ctx: Context, rows: list[Row], report: Report) -> int:
    compared = ctx.cuda
    print()
    worse = print_table(rows, args.tolerance, compared)
    correctness = [r for r in rows if r.kind == "correctness"]
    failed = [r for r in rows if r.failed]
    gaps = [r for r in correctness if r.status == "skipped"]
    total = ctx.elapsed()
    print(f"\ntotal {total:.0f}s on {environment(ctx.device)}")
    print(f"correctness: {sum(r.status == 'ok' for r in correctness)} passed, "
          f"{sum(r.failed for r in correctness)} failed, {len(gaps)} skipped")
    if not compared:
        print("CPU smoke run: tiny sizes, speed figures are not compared with diffusers.")
    report.write(status="done", total_s=total, compared=compared, worse=[r.name for r in worse],
                 failed=[r.name for r in failed])
    print(f"rows written to {args.json}")
    if failed:
        print("FAILED: " + ", ".join(f"{r.name} ({r.status})" for r in failed))
        return 1
    if worse:
        print(f"SLOWER: ours is more than {args.tolerance:.0%} worse than diffusers on: "
              + ", ".join(r.name for r in worse))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
