"""One-command GPU check: our engine vs diffusers' ConsisIDPipeline on a full-size random-weight ConsisID.

    python bench/gpu_check.py                 # one CUDA GPU, no download: 42 layers x 3072, 49 x 480 x 720
    python bench/gpu_check.py --device cpu    # the same code at tiny sizes (CI smoke test; figures not compared)

Writes a random model in the official layout (sharded bf16 transformer with the real config and real
face-extractor sizes, the real CogVideoX VAE, a 2-layer random T5 with the real 4096-wide output), then measures,
each implementation in turn: load time and peak host RAM (a fresh process each), time per denoising step,
peak VRAM per memory mode (ours: none / model_offload / sequential_offload; diffusers: .to(device) /
enable_model_cpu_offload / enable_sequential_cpu_offload) and each attention backend that imports.
Prints one table, writes a JSON file, and exits 1 when (on CUDA) any compared figure of ours is worse than
diffusers' by more than --tolerance (5 %).

Rows come from ROWS, a list of functions `row(ctx) -> list[Row]`; add a function to add rows (e.g. TeaCache,
fp8, compiled blocks) and it is timed, printed, saved and compared like the others.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from random_consisid import PROFILES, Profile, write_random_model  # noqa: E402

PROMPT = "A person smiles at the camera in a sunlit park; the camera slowly pushes in."
MODES = ("none", "model_offload", "sequential_offload")

# ---- measurements --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a figure of ours and of diffusers (None when it has no counterpart)."""

    name: str
    unit: str
    ours: float | None
    theirs: float | None
    compare: bool = True  # counts for the exit code (on CUDA)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.ours or not self.theirs else self.ours / self.theirs


@dataclass
class Context:
    """Shared state of one check: settings, the model folder and results that several rows read."""

    device: str
    profile: Profile
    folder: Path
    steps: int
    offload_steps: int
    modes: tuple[str, ...]
    runs: dict = field(default_factory=dict)  # (impl, mode) -> {"step_s", "peak_vram_gb", "wall_s"}
    keep_engine: object = None  # ours in mode none, reused for the attention rows

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> int:
    """Free what can be freed and restart the peak counter; returns the bytes still allocated (the baseline)."""
    import torch

    gc.collect()
    if not device.startswith("cuda"):
        return 0
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def _peak_gb(device: str, baseline: int) -> float | None:
    """Peak CUDA memory allocated since `_reset_peak`, above what was already allocated then."""
    import torch

    return (torch.cuda.max_memory_allocated() - baseline) / 1024**3 if device.startswith("cuda") else None


def _step_seconds(stamps: list[float]) -> float:
    """Mean time per step after the first (the first one includes warm-up)."""
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return sum(gaps) / len(gaps) if gaps else float("nan")


def _inputs(profile: Profile):
    import torch
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    lfe = profile.transformer
    id_cond = torch.randn(1, lfe["LFE_id_dim"], generator=gen)
    hidden = [torch.randn(1, profile.eva_tokens, lfe["LFE_vit_dim"], generator=gen) for _ in range(lfe["LFE_num_scale"])]
    face = Image.open(REPO / "consisid_core" / "assets" / "default_face.png").convert("RGB")
    return face, id_cond, hidden


def run_ours(ctx: Context, mode: str, steps: int, attention: str = "sdpa", engine=None):
    """Encode + denoise (no decode) with our engine; returns (figures, engine)."""
    import consisid_core

    baseline = _reset_peak(ctx.device) if engine is None else _reset_peak(ctx.device) - _engine_bytes(engine, ctx)
    face, id_cond, hidden = _inputs(ctx.profile)
    if engine is None:
        engine = consisid_core.load_engine(ctx.folder, device=ctx.device, dtype="bf16", memory_mode=mode,
                                           attention=attention, noise_device="gpu")
    else:
        engine.attention = attention
    stamps: list[float] = []
    start = time.perf_counter()
    text = engine.encode_text(PROMPT, "")
    global_cond = engine.encode_global(face, None, ctx.profile.height, ctx.profile.width)
    local = engine.encode_local(id_cond, hidden)

    def tick(step, total, latents):
        _sync(ctx.device)
        stamps.append(time.perf_counter())

    engine.denoise(text, global_cond, local, num_frames=ctx.profile.frames, num_inference_steps=steps,
                   guidance_scale=6.0, seed=42, callback=tick)
    _sync(ctx.device)
    figures = {"step_s": _step_seconds(stamps), "peak_vram_gb": _peak_gb(ctx.device, baseline),
               "wall_s": time.perf_counter() - start}
    return figures, engine


def run_theirs(ctx: Context, mode: str, steps: int):
    """The same with diffusers' ConsisIDPipeline (output_type='latent': no decode)."""
    import torch
    from diffusers import ConsisIDPipeline

    baseline = _reset_peak(ctx.device)
    face, id_cond, hidden = _inputs(ctx.profile)
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
        _sync(ctx.device)
        stamps.append(time.perf_counter())
        return {}

    start = time.perf_counter()
    generator = torch.Generator(ctx.device).manual_seed(42)
    pipe(image=face, prompt=PROMPT, negative_prompt="", height=ctx.profile.height, width=ctx.profile.width,
         num_frames=ctx.profile.frames, num_inference_steps=steps, guidance_scale=6.0, generator=generator,
         id_cond=id_cond.to(ctx.device), id_vit_hidden=[h.to(ctx.device) for h in hidden], output_type="latent",
         max_sequence_length=ctx.profile.text_len, callback_on_step_end=tick)
    _sync(ctx.device)
    figures = {"step_s": _step_seconds(stamps), "peak_vram_gb": _peak_gb(ctx.device, baseline),
               "wall_s": time.perf_counter() - start}
    pipe.maybe_free_model_hooks()
    del pipe
    return figures


def _engine_bytes(engine, ctx: Context) -> int:
    """Bytes of a kept engine's weights on the device (so a reused engine counts like a freshly loaded one)."""
    import torch

    models = (engine.transformer, engine.vae, engine.text_encoder)
    return sum(t.numel() * t.element_size() for m in models for t in [*m.parameters(), *m.buffers()]
               if t.device.type == torch.device(ctx.device).type)


def _run(ctx: Context, impl: str, mode: str) -> dict:
    key = (impl, mode)
    if key not in ctx.runs:
        steps = ctx.steps if mode == "none" else ctx.offload_steps
        if impl == "ours":
            figures, engine = run_ours(ctx, mode, steps)
            if mode == "none":
                ctx.keep_engine = engine
            del engine
        else:
            figures = run_theirs(ctx, mode, steps)
        ctx.runs[key] = figures
        gc.collect()
    return ctx.runs[key]


def _free(ctx: Context) -> None:
    ctx.keep_engine = None
    _reset_peak(ctx.device)


def load_in_subprocesses(ctx: Context, impls: tuple[str, ...]) -> list[dict]:
    """Load (and place on the device) in a fresh process each: wall time and peak RSS.

    One after the other on CUDA; at the same time in the CPU smoke run (its figures are not compared)."""
    def start(impl: str) -> subprocess.Popen:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_load", impl, "--_folder", str(ctx.folder),
               "--device", ctx.device]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(impl: str, proc: subprocess.Popen) -> dict:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"loading with {impl} failed:\n{err[-2000:]}")
        return json.loads(out.strip().splitlines()[-1])

    if ctx.cuda:
        return [finish(impl, start(impl)) for impl in impls]
    procs = [(impl, start(impl)) for impl in impls]
    return [finish(impl, proc) for impl, proc in procs]


def _load_child(impl: str, folder: str, device: str) -> None:
    import torch
    from diffusers import AutoencoderKLCogVideoX, ConsisIDPipeline, ConsisIDTransformer3DModel  # noqa: F401
    from transformers import T5EncoderModel  # noqa: F401

    import consisid_core.engine.loading  # imports are not load time

    _quiet()

    start = time.perf_counter()
    if impl == "ours":
        consisid_core.engine.loading.load_engine(folder, device=device, dtype="bf16", memory_mode="none")
    else:
        ConsisIDPipeline.from_pretrained(folder, torch_dtype=torch.bfloat16).to(device)
    _sync(device)
    seconds = time.perf_counter() - start
    print(json.dumps({"load_s": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}))

# ---- rows ------------------------------------------------------------------------------------------------------


def row_load(ctx: Context) -> list[Row]:
    ours, theirs = load_in_subprocesses(ctx, ("ours", "diffusers"))
    return [Row("load time (to device)", "s", ours["load_s"], theirs["load_s"]),
            Row("peak host RAM while loading", "GB", ours["peak_rss_gb"], theirs["peak_rss_gb"])]


def row_step_time(ctx: Context) -> list[Row]:
    theirs = _run(ctx, "diffusers", "none")  # first: nothing of ours is on the device while diffusers runs
    ours = _run(ctx, "ours", "none")
    return [Row("time per step (none, sdpa)", "s", ours["step_s"], theirs["step_s"], note=f"{ctx.steps} steps")]


def row_vram(ctx: Context) -> list[Row]:
    names = {"none": ".to(device)", "model_offload": "enable_model_cpu_offload",
             "sequential_offload": "enable_sequential_cpu_offload"}
    rows = []
    for mode in ctx.modes:
        ours = _run(ctx, "ours", mode)
        theirs = _run(ctx, "diffusers", mode) if ctx.cuda or mode == "none" else None
        if mode != "none":
            rows.append(Row(f"time per step ({mode})", "s", ours["step_s"], theirs and theirs["step_s"],
                            compare=theirs is not None, note=f"vs {names[mode]}"))
        rows.append(Row(f"peak VRAM ({mode})", "GB", ours["peak_vram_gb"], theirs and theirs["peak_vram_gb"],
                        compare=ctx.cuda, note=f"vs {names[mode]}"))
    return rows


def row_attention(ctx: Context) -> list[Row]:
    from consisid_core.engine.attention import available_backends
    from consisid_core.runtime import attention_problem

    import torch

    base = _run(ctx, "diffusers", "none")["step_s"]
    rows = []
    engine = ctx.keep_engine
    for backend in available_backends():
        if backend == "sdpa":
            continue
        name = f"time per step (attention {backend})"
        problem = attention_problem(backend, torch.device(ctx.device), torch.bfloat16)
        if problem is not None:
            rows.append(Row(name, "s", None, base, compare=False, note="not usable here"))
            continue
        if backend == "sdpa_math" and ctx.profile.name == "full":  # [2, 48, 17776, 17776] scores: ~60 GB
            rows.append(Row(name, "s", None, base, compare=False, note="skipped: materialises the attention matrix"))
            continue
        try:
            figures, engine = run_ours(ctx, "none", ctx.steps, backend, engine)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # e.g. a kernel this GPU lacks
            rows.append(Row(name, "s", None, base, compare=False, note=f"failed: {str(exc).splitlines()[0][:60]}"))
            _reset_peak(ctx.device)
            continue
        rows.append(Row(name, "s", figures["step_s"], base, compare=False, note="vs diffusers sdpa"))
    if engine is not None:
        engine.attention = "sdpa"
    return rows


# Row functions in table order; add yours here (each gets the Context, returns Rows).
ROWS: list[Callable[[Context], list[Row]]] = [row_load, row_step_time, row_attention, row_vram]
from gpu_parallel import row_parallel  # noqa: E402  (multi-GPU section: uses Row and Context above)

ROWS.append(row_parallel)
from gpu_speed import row_speed  # noqa: E402  (TeaCache, fp8, fast fp8, compiled blocks)

ROWS.append(row_speed)

# ---- report ------------------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def print_table(rows: list[Row], tolerance: float, compared: bool) -> list[Row]:
    """Print the table; return the compared rows where ours is worse by more than `tolerance`."""
    worse = []
    header = f"{'figure':44} {'unit':>4} {'ours':>10} {'diffusers':>10} {'ratio':>7}  note"
    print(header + "\n" + "-" * len(header))
    for row in rows:
        bad = compared and row.compare and row.ratio is not None and row.ratio > 1 + tolerance
        if bad:
            worse.append(row)
        ratio = "n/a" if row.ratio is None else f"{row.ratio:.3f}"
        print(f"{row.name:44} {row.unit:>4} {_fmt(row.ours):>10} {_fmt(row.theirs):>10} {ratio:>7}  "
              f"{row.note}{'  << WORSE' if bad else ''}")
    return worse


def _quiet() -> None:
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def environment(device: str) -> dict:
    import diffusers
    import torch

    info = {"torch": torch.__version__, "diffusers": diffusers.__version__, "device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (full size) or cpu (tiny sizes, smoke test)")
    parser.add_argument("--steps", type=int, default=3, help="denoising steps in mode none (first one not timed)")
    parser.add_argument("--offload-steps", type=int, default=2, help="denoising steps in the offload modes")
    parser.add_argument("--modes", default=",".join(MODES), help="memory modes to measure (comma separated)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None, help="default: full on CUDA, tiny on CPU")
    parser.add_argument("--json", type=Path, default=Path("gpu_check.json"), help="where to write the figures")
    parser.add_argument("--tolerance", type=float, default=0.05, help="allowed excess over diffusers (0.05 = 5 %%)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the random model (default: temp)")
    parser.add_argument("--_load", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._load:
        _load_child(args._load, args._folder, args.device)
        return 0

    import torch

    from consisid_core.runtime import resolve_device

    device = str(resolve_device(args.device))
    profile = PROFILES[args.profile or ("full" if device.startswith("cuda") else "tiny")]
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown memory modes {unknown}; choose from {list(MODES)}")
    with torch.no_grad():  # not set_grad_enabled: an in-process caller (the CI smoke test) keeps its grad mode
        return _check(args, device, profile, modes)


def _check(args, device: str, profile, modes: tuple[str, ...]) -> int:
    """Write the random model, run every row, print the table and the JSON; the exit code."""
    _quiet()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="consisid_gpu_check_", dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        folder = write_random_model(Path(tmp) / "ConsisID-random", profile, device)
        print(f"random {profile.name} model written in {time.perf_counter() - t0:.1f}s "
              f"({profile.transformer['num_layers']} layers, width "
              f"{profile.transformer['num_attention_heads'] * profile.transformer['attention_head_dim']}, "
              f"{profile.frames}x{profile.height}x{profile.width})", flush=True)
        ctx = Context(device, profile, folder, args.steps, args.offload_steps, modes)
        rows: list[Row] = []
        failed: list[str] = []
        for row_fn in ROWS:
            t0 = time.perf_counter()
            try:
                rows.extend(row_fn(ctx))
            except Exception as exc:  # one broken row must not hide the others
                failed.append(row_fn.__name__)
                rows.append(Row(row_fn.__name__, "", None, None, note=f"FAILED: {type(exc).__name__}: {exc}"[:200]))
                traceback.print_exc()
            print(f"[{row_fn.__name__}] {time.perf_counter() - t0:.1f}s", flush=True)
            if row_fn is row_attention:
                _free(ctx)
        _free(ctx)
    compared = device.startswith("cuda")
    print()
    worse = print_table(rows, args.tolerance, compared)
    total = time.perf_counter() - started
    print(f"\ntotal {total:.0f}s on {environment(device)}")
    if not compared:
        print("CPU smoke run: tiny sizes, figures are not compared with diffusers.")
    report = {"environment": environment(device), "profile": profile.name, "total_s": total,
              "tolerance": args.tolerance, "compared": compared,
              "rows": [{**asdict(r), "ratio": r.ratio} for r in rows], "worse": [r.name for r in worse],
              "failed": failed}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"figures written to {args.json}")
    if failed:
        print("FAILED: these measurements did not run: " + ", ".join(failed))
        return 1
    if worse:
        print(f"FAILED: ours is more than {args.tolerance:.0%} worse than diffusers on: " + ", ".join(r.name for r in worse))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
