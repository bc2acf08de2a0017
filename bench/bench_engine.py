"""Benchmark: our engine vs diffusers' ConsisIDPipeline on the same model, same machine, same run.

Builds a model with the real transformer width (48 heads x 64 = 3072, real face-extractor sizes) but few
layers and a small video, so that the denoising step dominates; runs each implementation in its own
process (clean peak-memory numbers), alternating them, and prints time per step, peak RSS and ratios.

    python bench/bench_engine.py [--layers 2] [--steps 4] [--repeats 2] [--frames 9]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_model(folder: Path, layers: int, height: int, width: int, frames: int, text_len: int) -> None:
    """Real-width ConsisID transformer with `layers` blocks; tiny VAE; a T5 whose output is 4096 wide."""
    import torch
    from diffusers import ConsisIDTransformer3DModel

    from consisid_core.testing import tiny_models as tm

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


def _inputs(height: int, width: int):
    import numpy as np
    import torch
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    face = Image.fromarray((np.random.RandomState(0).rand(512, 512, 3) * 255).astype("uint8"))
    return face, torch.randn(1, 1280, generator=gen), [torch.randn(1, 577, 1024, generator=gen) for _ in range(5)]


def worker(kind: str, model: str, steps: int, height: int, width: int, frames: int) -> dict:
    """Load and run one implementation; report load time, per-step times and peak RSS."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    face, id_cond, hidden = _inputs(height, width)
    prompt = "a man walks in the city street at night"
    stamps: list[float] = []
    t0 = time.perf_counter()
    if kind == "engine":
        import consisid_core

        engine = consisid_core.load_engine(model, device="cpu", dtype=torch.float32)
        load_s = time.perf_counter() - t0
        start = time.perf_counter()
        stamps.append(start)
        engine.generate(prompt, image=face, id_cond=id_cond, id_vit_hidden=hidden, height=height, width=width,
                        num_frames=frames, num_inference_steps=steps, seed=0,
                        callback=lambda step, total, latents: stamps.append(time.perf_counter()))
    else:
        from diffusers import ConsisIDPipeline

        pipe = ConsisIDPipeline.from_pretrained(model, torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        load_s = time.perf_counter() - t0

        def on_step(pipeline, i, t, kwargs):
            stamps.append(time.perf_counter())
            return kwargs

        start = time.perf_counter()
        stamps.append(start)
        pipe(image=face, prompt=prompt, id_cond=id_cond, id_vit_hidden=hidden, height=height, width=width,
             num_frames=frames, num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
             output_type="pt", max_sequence_length=pipe.transformer.config.max_text_seq_length,
             callback_on_step_end=on_step)
    # the first stamp->step-1 interval also holds text/VAE encoding; steps 2.. are pure denoising
    step_times = [b - a for a, b in zip(stamps[1:], stamps[2:])]
    return {
        "kind": kind,
        "load_s": load_s,
        "step_s": statistics.median(step_times),
        "total_s": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--text-len", type=int, default=32)
    parser.add_argument("--worker", choices=["engine", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.steps, args.height, args.width, args.frames)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        build_model(folder, args.layers, args.height, args.width, args.frames, args.text_len)
        results: dict[str, list[dict]] = {"engine": [], "reference": []}
        for repeat in range(args.repeats):
            order = ["engine", "reference"] if repeat % 2 == 0 else ["reference", "engine"]
            for kind in order:
                cmd = [sys.executable, __file__, "--worker", kind, "--model", str(folder), "--steps", str(args.steps),
                       "--height", str(args.height), "--width", str(args.width), "--frames", str(args.frames)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                results[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {k: {m: statistics.median(r[m] for r in v) for m in ("load_s", "step_s", "peak_rss_mb")}
               for k, v in results.items()}
    print(f"model: real width 3072, {args.layers} layers, {args.width}x{args.height}x{args.frames}, "
          f"{args.steps} steps, CFG on, float32, CPU x{os.cpu_count()}, {args.repeats} runs each (median)")
    print(f"{'':12}{'s/step':>10}{'peak RSS MB':>14}{'load s':>10}")
    for kind, s in summary.items():
        print(f"{kind:12}{s['step_s']:>10.3f}{s['peak_rss_mb']:>14.0f}{s['load_s']:>10.2f}")
    e, r = summary["engine"], summary["reference"]
    print(f"ratio engine/reference: time per step {e['step_s'] / r['step_s']:.3f}, "
          f"peak memory {e['peak_rss_mb'] / r['peak_rss_mb']:.3f}, load {e['load_s'] / r['load_s']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
