"""Benchmark: loading a full-width ConsisID transformer, ours (streamed, cast per tensor) vs diffusers' from_pretrained.

Writes a random-weight transformer with the real config (width 3072, real face-extractor sizes; 42 layers by
default, `--layers` for fewer) in the official sharded layout (bf16 shards + diffusion_pytorch_model.safetensors
.index.json), then loads it in a fresh process per side and dtype, alternating, and prints peak RSS (VmHWM),
load time, the loaded model's bytes, ratios, and whether ours stays within 1.15 x model bytes + 1 GB.

    python bench/bench_load.py [--layers 42] [--dtypes bf16 fp16] [--shard-gb 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import REPO  # noqa: E402,F401  (puts the repository root on sys.path)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
GB = 1024**3

REAL_CONFIG = dict(
    num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, time_embed_dim=512,
    text_embed_dim=4096, num_layers=42, sample_width=90, sample_height=60, sample_frames=49, patch_size=2,
    max_text_seq_length=226, use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
    is_train_face=True, is_kps=False, cross_attn_interval=2, cross_attn_dim_head=128, cross_attn_num_heads=16,
    LFE_id_dim=1280, LFE_vit_dim=1024, LFE_depth=10, LFE_dim_head=64, LFE_num_heads=16, LFE_num_id_token=5,
    LFE_num_querie=32, LFE_output_dim=2048, LFE_ff_mult=4, LFE_num_scale=5,
)


def write_model(folder: Path, layers: int, shard_gb: float) -> None:
    """Random bf16 weights, generated tensor by tensor into shards (never the whole model in memory)."""
    import torch
    from diffusers import ConsisIDTransformer3DModel
    from safetensors.torch import save_file

    from consisid_core.engine.weights import _parameters_on_meta

    config = {**REAL_CONFIG, "num_layers": layers}
    with _parameters_on_meta():
        skeleton = ConsisIDTransformer3DModel(**config)
    persistent = skeleton.state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    pool = (torch.randn(1 << 24, generator=torch.Generator().manual_seed(0)) * 0.02).to(torch.bfloat16)
    shards, shard, size = [], {}, 0
    for name, tensor in persistent.items():
        if tensor.is_meta:  # random values (a random pool tiled: writing stays at disk speed)
            value = pool.repeat(tensor.numel() // pool.numel() + 1)[: tensor.numel()].view(tensor.shape).clone()
        else:
            value = tensor
        shard[name] = value.to(torch.bfloat16) if value.is_floating_point() else value
        size += shard[name].nbytes
        if size >= shard_gb * GB:
            shards.append(shard)
            save_file(shard, str(folder / f"part{len(shards)}.safetensors"))
            shard, size = {}, 0
    if shard:
        shards.append(shard)
        save_file(shard, str(folder / f"part{len(shards)}.safetensors"))
    total, weight_map = len(shards), {}
    for i, part in enumerate(shards, 1):
        final = f"diffusion_pytorch_model-{i:05d}-of-{total:05d}.safetensors"
        (folder / f"part{i}.safetensors").rename(folder / final)
        weight_map.update({k: final for k in part})
    nbytes = sum(t.nbytes for part in shards for t in part.values())
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": nbytes}, "weight_map": weight_map}, indent=1))
    (folder / "config.json").write_text(json.dumps(
        {"_class_name": "ConsisIDTransformer3DModel", "_diffusers_version": "0.32.0", **config}, indent=1))


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(side: str, folder: Path, dtype_name: str) -> None:
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype_name]
    from diffusers import ConsisIDTransformer3DModel

    base = _peak_rss()
    start = time.perf_counter()
    if side == "ours":
        from consisid_core.engine.files import read_config
        from consisid_core.engine.weights import build_model

        files = sorted(folder.glob("*.safetensors"))
        model = build_model(ConsisIDTransformer3DModel, read_config(folder / "config.json"), files, dtype,
                            "transformer", "bench")
    else:
        model = ConsisIDTransformer3DModel.from_pretrained(str(folder), torch_dtype=dtype)
    seconds = time.perf_counter() - start
    nbytes = sum(t.nbytes for t in model.state_dict().values())
    print(json.dumps({"side": side, "dtype": dtype_name, "seconds": seconds, "peak_rss": _peak_rss(),
                      "base_rss": base, "model_bytes": nbytes}))


def _run_child(side: str, folder: Path, dtype: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", side, "--folder", str(folder), "--dtype", dtype],
                         capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=42)
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp16"])
    parser.add_argument("--shard-gb", type=float, default=2.0, help="shard size of the written checkpoint")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="write (or reuse) the checkpoint here")
    parser.add_argument("--child", choices=["ours", "diffusers"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="bf16", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.folder, args.dtype)
        return 0

    tmp = None if args.keep else tempfile.mkdtemp(prefix="consisid_bench_load_")
    folder = args.keep or Path(tmp) / "transformer"
    try:
        if not (folder / "config.json").is_file():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "from bench.bench_load import write_model; from pathlib import Path; "
                            f"write_model(Path({str(folder)!r}), {args.layers}, {args.shard_gb})"], check=True,
                           cwd=REPO)  # `python -c` puts its working folder on sys.path
            print(f"wrote a {args.layers}-layer transformer in {time.perf_counter() - start:.0f} s")
        on_disk = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
        shards = len(list(folder.glob("*.safetensors")))
        print(f"checkpoint: {folder} ({on_disk / GB:.2f} GB bf16 in {shards} shards)")
        for f in folder.glob("*.safetensors"):  # warm the page cache so neither side pays the first read
            with open(f, "rb") as handle:
                while handle.read(64 << 20):
                    pass
        rows = []
        for dtype in args.dtypes:
            for _ in range(args.repeats):
                for side in ("ours", "diffusers"):
                    rows.append(_run_child(side, folder, dtype))
        print(f"\n{'dtype':<6}{'side':<11}{'load s':>8}{'peak RSS GB':>13}{'model GB':>10}{'peak/model':>12}"
              f"{'limit GB':>10}")
        for r in rows:
            limit = 1.15 * r["model_bytes"] + GB
            print(f"{r['dtype']:<6}{r['side']:<11}{r['seconds']:>8.1f}{r['peak_rss'] / GB:>13.2f}"
                  f"{r['model_bytes'] / GB:>10.2f}{r['peak_rss'] / r['model_bytes']:>12.2f}{limit / GB:>10.2f}")
        ok = True
        for dtype in args.dtypes:
            ours = [r for r in rows if r["dtype"] == dtype and r["side"] == "ours"]
            theirs = [r for r in rows if r["dtype"] == dtype and r["side"] == "diffusers"]
            peak = max(r["peak_rss"] for r in ours)
            within = peak <= 1.15 * ours[0]["model_bytes"] + GB
            ok &= within
            print(f"{dtype}: ours/diffusers peak RSS {peak / max(r['peak_rss'] for r in theirs):.2f}, "
                  f"load time {min(r['seconds'] for r in ours) / min(r['seconds'] for r in theirs):.2f}; "
                  f"ours within 1.15 x model + 1 GB: {'yes' if within else 'NO'}")
        return 0 if ok else 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
