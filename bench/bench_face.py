"""Benchmark: time per photo and peak memory of extract_identity vs the reference face chain.

Both run in one invocation on the same random-weight face_encoder/ (official formats: full-size
RetinaFace-R50, BiSeNet, EVA02-CLIP-L-14-336; tiny antelopev2 ONNX), each in its own child process so
peak RSS is measured separately. The reference is diffusers' consisid_utils (prepare_face_models +
process_face_embeddings_infer), called the way its docs do (outside torch.no_grad).

Needs the reference environment:
    .venv-ref/bin/python bench/bench_face.py [--repeat 3] [--photos astronaut,t1,tom] [--model-dir DIR]
Prints one line per photo and the ratio ours/reference (target <= 1.0 on CPU).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench_common import REPO  # noqa: E402,F401  (puts the repository root on sys.path)


def load_photos(names: list[str]) -> dict:
    import numpy as np
    import skimage.data
    from insightface.data import get_image

    table = {
        "astronaut": lambda: skimage.data.astronaut(),
        "t1": lambda: np.ascontiguousarray(get_image("t1")[:, :, ::-1]),
        "tom": lambda: np.ascontiguousarray(get_image("Tom_Hanks_54745")[:, :, ::-1]),
    }
    return {n: table[n]() for n in names}


def _ours(model_dir: Path):
    from consisid_core.face import extract_identity, load_face_models

    models = load_face_models(model_dir)
    return lambda img: extract_identity(models, img, "reference")


def _reference(model_dir: Path, no_grad: bool):
    import torch
    from diffusers.pipelines.consisid.consisid_utils import prepare_face_models, process_face_embeddings_infer

    h1, h2, clip, app, mean, std = prepare_face_models(str(model_dir), "cpu", torch.float32)

    def run(img):
        with torch.set_grad_enabled(not no_grad):
            return process_face_embeddings_infer(h1, clip, h2, mean, std, app, "cpu", torch.float32, img)

    return run


def worker(kind: str, model_dir: Path, photos: list[str], repeat: int, no_grad: bool) -> dict:
    """kind "time": load both chains and time them interleaved (so machine load hits both alike);
    kind "ours"/"reference": load one chain, run each photo once, report its peak RSS."""
    import torch

    warnings.filterwarnings("ignore")
    images = load_photos(photos)
    t0 = time.perf_counter()
    chains = {}
    if kind in ("time", "reference"):
        chains["reference"] = _reference(model_dir, no_grad)
    t1 = time.perf_counter()
    if kind in ("time", "ours"):
        chains["ours"] = _ours(model_dir)
    load = {"reference": t1 - t0, "ours": time.perf_counter() - t1}
    times = {k: {n: [] for n in images} for k in chains}
    for name, img in images.items():
        for run in chains.values():
            run(img)  # warm-up
        for _ in range(repeat if kind == "time" else 0):
            for k, run in chains.items():
                t = time.perf_counter()
                run(img)
                times[k][name].append(time.perf_counter() - t)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"load_s": load, "times": times, "peak_rss_mb": peak_mb, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="folder with face_encoder/ (default: random full-size, built now)")
    parser.add_argument("--photos", default="astronaut,t1,tom")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ref-no-grad", action="store_true", help="wrap the reference call in torch.no_grad")
    parser.add_argument("--worker", choices=["time", "ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    photos = args.photos.split(",")
    if args.worker:
        print(json.dumps(worker(args.worker, args.model_dir, photos, args.repeat, args.ref_no_grad)))
        return

    tmp = None
    if args.model_dir is None:
        from consisid_core.demo.face_models import write_face_encoder

        from consisid_core.demo.parsenet import write_parsenet

        tmp = tempfile.TemporaryDirectory(prefix="bench_face_")
        args.model_dir = Path(tmp.name)
        t = time.perf_counter()
        write_face_encoder(args.model_dir, eva="full", seed=0)
        write_parsenet(args.model_dir)  # facexlib loads it (and discards it) in the reference chain
        print(f"random full-size face_encoder written in {time.perf_counter() - t:.1f}s")
    def child(kind: str) -> dict:
        cmd = [sys.executable, __file__, "--worker", kind, "--model-dir", str(args.model_dir),
               "--photos", args.photos, "--repeat", str(args.repeat)] + (["--ref-no-grad"] if args.ref_no_grad else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    timing = child("time")
    mem = {k: child(k)["peak_rss_mb"] for k in ("reference", "ours")}
    times = timing["times"]
    print(f"threads: {timing['threads']}; {args.repeat} interleaved runs per photo after a warm-up; "
          f"reference called {'under' if args.ref_no_grad else 'without'} torch.no_grad")
    print(f"{'photo':<10} {'reference s':>12} {'ours s':>8} {'ratio':>6}   (median; min ratio)")
    medians = {k: {n: statistics.median(v) for n, v in times[k].items()} for k in times}
    for name in photos:
        r, o = medians["reference"][name], medians["ours"][name]
        best = min(times["ours"][name]) / min(times["reference"][name])
        print(f"{name:<10} {r:>12.3f} {o:>8.3f} {o / r:>6.2f}   ({best:.2f})")
    total_r, total_o = sum(medians["reference"].values()), sum(medians["ours"].values())
    print(f"{'all':<10} {total_r:>12.3f} {total_o:>8.3f} {total_o / total_r:>6.2f}   <- time ratio ours/reference")
    print(f"load s: reference {timing['load_s']['reference']:.1f}, ours {timing['load_s']['ours']:.1f}")
    print(f"peak RSS MB (separate processes, load + one run per photo): reference {mem['reference']:.0f}, "
          f"ours {mem['ours']:.0f}, ratio {mem['ours'] / mem['reference']:.2f}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
