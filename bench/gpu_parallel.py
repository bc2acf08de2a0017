"""The multi-GPU section of bench/gpu_check.py: step time of each parallel layout that fits the visible GPUs,
against one GPU and against xDiT's own ConsisID example code on the same model, each layout under torchrun.

On CPU (smoke mode) it runs the CFG layout on 2 gloo processes at tiny size, so the code path
stays exercised; the xDiT column needs xfuser, which only imports on a machine with an accelerator."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (label, cfg, ulysses, ring): the layouts of the ConsisID authors' xDiT table, smallest first
LAYOUTS = [("cfg2", True, 1, 1), ("ulysses2", False, 2, 1), ("ring2", False, 1, 2), ("cfg2+ulysses2", True, 2, 1),
           ("cfg2+ring2", True, 1, 2), ("cfg2+ring3", True, 1, 3)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(ctx, impl: str, cfg: bool, ulysses: int, ring: int, timeout: float = 600) -> dict:
    """One torchrun of bench/parallel_step.py; rank 0's figures, or {"error": reason}."""
    nproc = (2 if cfg else 1) * ulysses * ring
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(HERE / "parallel_step.py"), "--impl", impl, "--folder",
           str(ctx.folder), "--profile", ctx.profile.name, "--device", ctx.device, "--steps", str(ctx.steps),
           "--ulysses", str(ulysses), "--ring", str(ring), *(["--cfg"] if cfg else [])]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = [line for line in done.stderr.splitlines() if line.strip()][-1:] or ["no output"]
    return {"error": tail[0][:80]}


def usable_layouts(ctx) -> list[tuple[str, bool, int, int]]:
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
        if not ctx.cuda and ring > 1:  # yunchang's ring attention needs CUDA kernels
            continue
        if sp > 1 and importlib.util.find_spec("yunchang") is None:
            continue
        chosen.append((label, cfg, ulysses, ring))
    return chosen if ctx.cuda else chosen[:1]  # the CPU smoke run keeps one layout (the tests cover the others)


def row_parallel(ctx) -> list:
    """Rows: each layout's step time, ours vs xDiT's example (when xfuser imports), and the speed-up over one device."""
    from gpu_check import Row

    import torch

    if ctx.cuda and torch.cuda.device_count() < 2:
        return [Row("parallel layouts", "s", None, None, compare=False, note="one GPU visible: section skipped")]
    single = ctx.runs.get(("ours", "none"), {}).get("step_s")
    rows = []
    xdit = ctx.cuda and importlib.util.find_spec("xfuser") is not None
    for label, cfg, ulysses, ring in usable_layouts(ctx):
        ours = launch(ctx, "ours", cfg, ulysses, ring)
        theirs = launch(ctx, "xdit", cfg, ulysses, ring) if xdit else {}
        note = ours.get("error") or theirs.get("error") or ""
        if not note and single and ours.get("step_s"):
            note = f"{single / ours['step_s']:.2f}x vs 1 device"
        if not xdit:
            note = (note + "; " if note else "") + "no xDiT column (xfuser needs an accelerator)"
        rows.append(Row(f"time per step (parallel {label})", "s", ours.get("step_s"), theirs.get("step_s"),
                        compare=xdit and "step_s" in theirs, note=note))
    return rows
