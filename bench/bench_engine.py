"""Benchmark: our engine vs diffusers' ConsisIDPipeline on the same model, same machine, same run.

Engine part: a model with the real transformer width (48 heads x 64 = 3072, real face-extractor sizes, real
226-token text) but few layers, at a realistic token count (default 49 frames at 320x256: 13 x 16 x 20 =
4,160 video tokens per step, CFG batch 2). Each implementation runs in its own process (clean peak-memory
numbers), alternating; prints the median CPU and wall time per denoising step, the peak RSS *during* generation
and ratios; then the transformer forward alone, ours and diffusers' alternated in one process (same inputs).

TeaCache part (--teacache): our engine only, 50 steps on a cheaper model (real width, 2 layers, 9 frames at
96x64), no cache and thresholds 0.1 / 0.15 / 0.2 in one process: computed steps and wall-time ratio. Random
weights skip differently from the real checkpoint: the distances come from the (untrained) time embedding.

    python bench/bench_engine.py [--layers 2] [--steps 4] [--repeats 1] [--frames 49] [--teacache-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import REPO  # noqa: E402,F401  (puts the repository root on sys.path)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
TEACACHE_THRESHOLDS = (0.1, 0.15, 0.2)
TIME_EMBEDDING_SHIFT = 1.0  # added to the time embedding's output bias for the "shifted" TeaCache rows


def build_model(folder: Path, layers: int, height: int, width: int, frames: int, text_len: int) -> None:
    """Real-width ConsisID transformer with `layers` blocks; tiny VAE; a T5 whose output is 4096 wide."""
    import torch
    from diffusers import ConsisIDTransformer3DModel

    from consisid_core.demo import video_models as tm

    spec = tm.TinySpec.real_face_dims(height=height, width=width, frames=frames, text_len=text_len)
    tm.write_tiny_model(folder, spec)
    torch.manual_seed(0)
    transformer = ConsisIDTransformer3DModel(
        num_attention_heads=48, attention_head_dim=64, in_channels=8, out_channels=4, time_embed_dim=512,
        text_embed_dim=4096, num_layers=layers, sample_width=width // 8, sample_height=height // 8,
        sample_frames=frames, max_text_seq_length=text_len, use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True, is_train_face=True, cross_attn_interval=2, cross_attn_dim_head=128,
        cross_attn_num_heads=16, LFE_id_dim=1280, LFE_vit_dim=1024, LFE_depth=10, LFE_dim_head=64, LFE_num_heads=16,
        LFE_num_id_token=5, LFE_num_querie=32, LFE_output_dim=2048, LFE_ff_mult=4, LFE_num_scale=5,
    )
    transformer.save_pretrained(str(folder / "transformer"))
    from transformers import T5Config, T5EncoderModel

    vocab = T5EncoderModel.from_pretrained(str(folder / "text_encoder")).config.vocab_size
    T5EncoderModel(T5Config(vocab_size=vocab, d_model=4096, d_kv=64, d_ff=256, num_layers=1, num_heads=4,
                            relative_attention_num_buckets=8)).save_pretrained(str(folder / "text_encoder"))


def _inputs():
    import numpy as np
    import torch
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    face = Image.fromarray((np.random.RandomState(0).rand(512, 512, 3) * 255).astype("uint8"))
    return face, torch.randn(1, 1280, generator=gen), [torch.randn(1, 577, 1024, generator=gen) for _ in range(5)]


def _reset_peak_rss() -> None:
    """Linux: reset VmHWM so the next reading is the peak of what follows (not of loading)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]


def worker(kind: str, model: str, steps: int, height: int, width: int, frames: int, dtype: str) -> dict:
    """Load and run one implementation; report load time, per-step times and peak RSS while generating."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    face, id_cond, hidden = _inputs()
    prompt = "a man walks in the city street at night"
    stamps: list[tuple[float, float]] = []  # (wall, process CPU) after each step

    def stamp() -> None:
        stamps.append((time.perf_counter(), time.process_time()))

    t0 = time.perf_counter()
    if kind == "engine":
        import consisid_core

        engine = consisid_core.load_engine(model, device="cpu", dtype=_dtype(dtype))
        load_s = time.perf_counter() - t0
        loaded_rss = _peak_rss_mb()
        _reset_peak_rss()
        start = time.perf_counter()
        stamp()
        engine.generate(prompt, image=face, id_cond=id_cond, id_vit_hidden=hidden, height=height, width=width,
                        num_frames=frames, num_inference_steps=steps, seed=0,
                        callback=lambda step, total, latents: stamp())
    else:
        from diffusers import ConsisIDPipeline

        pipe = ConsisIDPipeline.from_pretrained(model, torch_dtype=_dtype(dtype))
        pipe.set_progress_bar_config(disable=True)
        load_s = time.perf_counter() - t0

        def on_step(pipeline, i, t, kwargs):
            stamp()
            return kwargs

        loaded_rss = _peak_rss_mb()
        _reset_peak_rss()
        start = time.perf_counter()
        stamp()
        pipe(image=face, prompt=prompt, id_cond=id_cond, id_vit_hidden=hidden, height=height, width=width,
             num_frames=frames, num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
             output_type="pt", max_sequence_length=pipe.transformer.config.max_text_seq_length,
             callback_on_step_end=on_step)
    # the first stamp->step-1 interval also holds text/VAE encoding; steps 2.. are pure denoising
    pairs = list(zip(stamps[1:], stamps[2:]))
    return {
        "kind": kind,
        "load_s": load_s,
        "step_s": statistics.median(b[0] - a[0] for a, b in pairs),
        "step_cpu_s": statistics.median(b[1] - a[1] for a, b in pairs),
        "total_s": time.perf_counter() - start,
        "peak_rss_mb": _peak_rss_mb(),
        "load_peak_rss_mb": loaded_rss,
    }


def _median_distance(engine, steps: int) -> float:
    """Median relative L1 distance between consecutive timestep embeddings (what TeaCache measures)."""
    import torch
    from diffusers import CogVideoXDPMScheduler

    scheduler = CogVideoXDPMScheduler.from_config(engine.scheduler.config)
    scheduler.set_timesteps(steps)
    tr = engine.transformer
    with torch.no_grad():
        embs = [tr.time_embedding(tr.time_proj(t.expand(2)).to(engine.dtype), None) for t in scheduler.timesteps]
    return statistics.median(((a - b).abs().mean() / b.abs().mean()).item() for a, b in zip(embs[1:], embs[:-1]))


def teacache_worker(model: str, steps: int, height: int, width: int, frames: int, dtype: str) -> dict:
    """One process, one model: no cache, then each threshold; denoising wall time and computed steps.

    Then again with the time embedding's output shifted so that step-to-step distances fall in the range the
    authors' polynomial was fitted on (the random embedding's jumps make the polynomial negative: all skipped).
    """
    import torch

    import consisid_core

    torch.set_num_threads(os.cpu_count() or 1)
    face, id_cond, hidden = _inputs()
    engine = consisid_core.load_engine(model, device="cpu", dtype=_dtype(dtype))
    text = engine.encode_text("a man walks in the city street at night", "")
    glob = engine.encode_global(face, height=height, width=width)
    local = engine.encode_local(id_cond, hidden)
    rows = {}
    for variant in ("random", "shifted"):
        if variant == "shifted":
            with torch.no_grad():
                engine.transformer.time_embedding.linear_2.bias.add_(TIME_EMBEDDING_SHIFT)
        distance = _median_distance(engine, steps)
        for threshold in (None, *TEACACHE_THRESHOLDS):
            cache = None if threshold is None else consisid_core.TeaCache(threshold)
            start, cpu = time.perf_counter(), time.process_time()
            engine.denoise(text, glob, local, num_frames=frames, num_inference_steps=steps, seed=0, cache=cache)
            rows[f"{variant} {'none' if threshold is None else f'{threshold:g}'}"] = {
                "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                "computed": steps if cache is None else cache.stats["computed"], "distance": distance}
    return rows


def forward_worker(model: str, height: int, width: int, frames: int, dtype: str, repeats: int = 3) -> dict:
    """One process, one model: our transformer_forward and diffusers' forward (which reruns the face extractor)
    alternated on the same inputs; medians of wall and CPU seconds (robust to other load on the machine)."""
    import torch

    import consisid_core
    from consisid_core.engine.rotary import rotary_embeddings
    from consisid_core.engine.transformer_forward import transformer_forward

    torch.set_num_threads(os.cpu_count() or 1)
    engine = consisid_core.load_engine(model, device="cpu", dtype=_dtype(dtype))
    tr, dt, info = engine.transformer, _dtype(dtype), engine.info
    _, id_cond, hidden = _inputs()
    gen = torch.Generator().manual_seed(1)
    latent_frames = info.latent_frames(frames)
    x = torch.randn(2, latent_frames, 8, height // 8, width // 8, generator=gen).to(dt)
    text = torch.randn(2, info.text_len, 4096, generator=gen).to(dt)
    id_cond, hidden = id_cond.to(dt), [h.to(dt) for h in hidden]
    t = torch.tensor([500, 500])
    times: dict[str, list[tuple[float, float]]] = {"engine": [], "reference": []}
    with torch.inference_mode():
        tokens = tr.local_facial_extractor(id_cond, hidden)
        rotary = rotary_embeddings(info, height, width, latent_frames, torch.device("cpu"))
        calls = {
            "engine": lambda: transformer_forward(tr, x, text, t, rotary, tokens, 1.0),
            "reference": lambda: tr(hidden_states=x, encoder_hidden_states=text, timestep=t, image_rotary_emb=rotary,
                                    id_cond=id_cond, id_vit_hidden=hidden, return_dict=False)[0],
        }
        for repeat in range(repeats + 1):
            for kind in (("engine", "reference") if repeat % 2 == 0 else ("reference", "engine")):
                wall, cpu = time.perf_counter(), time.process_time()
                calls[kind]()
                if repeat:  # the first round warms up
                    times[kind].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {k: {"wall_s": statistics.median(w for w, _ in v), "cpu_s": statistics.median(c for _, c in v)}
            for k, v in times.items()}


def _run_worker(args: argparse.Namespace, folder: Path, kind: str, **sizes) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--model", str(folder), "--dtype", args.dtype]
    for key, value in sizes.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def engine_vs_reference(args: argparse.Namespace, tmp: str) -> None:
    folder = Path(tmp) / "model"
    build_model(folder, args.layers, args.height, args.width, args.frames, args.text_len)
    sizes = dict(steps=args.steps, height=args.height, width=args.width, frames=args.frames)
    results: dict[str, list[dict]] = {"engine": [], "reference": []}
    for repeat in range(args.repeats):
        for kind in (["engine", "reference"] if repeat % 2 == 0 else ["reference", "engine"]):
            results[kind].append(_run_worker(args, folder, kind, **sizes))
    metrics = ("load_s", "step_s", "step_cpu_s", "peak_rss_mb", "load_peak_rss_mb")
    summary = {k: {m: statistics.median(r[m] for r in v) for m in metrics} for k, v in results.items()}
    tokens = ((args.frames - 1) // 4 + 1) * (args.height // 16) * (args.width // 16)
    print(f"model: real width 3072, {args.layers} layers (face injection every 2nd), {args.width}x{args.height}x"
          f"{args.frames} = {tokens} video + {args.text_len} text tokens per step, CFG on (batch 2), {args.dtype}, "
          f"{args.steps} steps, CPU x{os.cpu_count()}, {args.repeats} run(s) each, alternating (median)")
    print(f"{'':12}{'CPU s/step':>12}{'wall s/step':>12}{'peak RSS MB generate':>22}{'peak RSS MB load':>18}"
          f"{'load s':>8}")
    for kind, s in summary.items():
        print(f"{kind:12}{s['step_cpu_s']:>12.2f}{s['step_s']:>12.2f}{s['peak_rss_mb']:>22.0f}"
              f"{s['load_peak_rss_mb']:>18.0f}{s['load_s']:>8.1f}")
    e, r = summary["engine"], summary["reference"]
    print(f"ratio engine/reference: CPU time per step {e['step_cpu_s'] / r['step_cpu_s']:.3f}, wall time per step "
          f"{e['step_s'] / r['step_s']:.3f}, peak memory while generating {e['peak_rss_mb'] / r['peak_rss_mb']:.3f}, "
          f"load time {e['load_s'] / r['load_s']:.3f}")
    print("(CPU time = process CPU seconds, the fairer figure on a shared machine; peak RSS while generating is "
          "reset after loading, Linux VmHWM)")
    fw = _run_worker(args, folder, "forward", height=args.height, width=args.width, frames=args.frames,
                     repeats=args.repeats)
    e, r = fw["engine"], fw["reference"]
    print(f"transformer forward alone, alternated in one process ({args.repeats + 2} rounds, median): engine "
          f"{e['cpu_s']:.2f} CPU s / {e['wall_s']:.2f} s, diffusers forward {r['cpu_s']:.2f} CPU s / {r['wall_s']:.2f} s; "
          f"ratio CPU {e['cpu_s'] / r['cpu_s']:.3f}, wall {e['wall_s'] / r['wall_s']:.3f}")


def teacache_table(args: argparse.Namespace, tmp: str) -> None:
    folder = Path(tmp) / "teacache_model"
    height, width, frames = 64, 96, 9
    build_model(folder, 2, height, width, frames, 32)
    rows = _run_worker(args, folder, "teacache", steps=50, height=height, width=width, frames=frames)
    print(f"TeaCache, our engine, 50 steps, real width 3072, 2 layers, {width}x{height}x{frames}, {args.dtype}, "
          "CFG on. Random weights: the real checkpoint skips differently (its trained time embedding decides).")
    print(f"{'embedding':>10}{'median dist':>12}{'threshold':>10}{'computed':>10}{'CPU s':>8}{'speed-up':>10}"
          f"{'wall s':>8}{'speed-up':>10}")
    for name, row in rows.items():
        variant, threshold = name.split()
        base = rows[f"{variant} none"]
        print(f"{variant:>10}{row['distance']:>12.3f}{threshold:>10}{row['computed']:>7}/50{row['cpu_seconds']:>8.1f}"
              f"{base['cpu_seconds'] / row['cpu_seconds']:>9.2f}x{row['seconds']:>8.1f}"
              f"{base['seconds'] / row['seconds']:>9.2f}x")
    print(f"(shifted: the time embedding's output bias + {TIME_EMBEDDING_SHIFT}, so consecutive embeddings differ by "
          "a few percent as the polynomial assumes; random: the untrained embedding jumps and every step but the "
          "first and last is skipped)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--text-len", type=int, default=226)
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--teacache", action="store_true", help="also run the TeaCache table")
    parser.add_argument("--teacache-only", action="store_true", help="only the TeaCache table")
    parser.add_argument("--worker", choices=["engine", "reference", "teacache", "forward"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "forward":
        print(json.dumps(forward_worker(args.model, args.height, args.width, args.frames, args.dtype, args.repeats + 2)))
        return 0
    if args.worker == "teacache":
        print(json.dumps(teacache_worker(args.model, args.steps, args.height, args.width, args.frames, args.dtype)))
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.steps, args.height, args.width, args.frames, args.dtype)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        if not args.teacache_only:
            engine_vs_reference(args, tmp)
        if args.teacache or args.teacache_only:
            teacache_table(args, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
