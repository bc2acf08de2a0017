"""One rank of a parallel CPU run for the tests: `torchrun --nproc_per_node N parallel_worker.py MODEL OUT LAYOUT`.

LAYOUT is `cfg,ulysses,ring`; rank 0 saves {teacache threshold: run(...)} for thresholds 0 and 0.3 to OUT."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for support.*
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo for consisid_core

import consisid_core  # noqa: E402
from consisid_core.parallel import ParallelConfig, init_parallel  # noqa: E402
from support.engine_inputs import PROMPT, face_image, identity  # noqa: E402


THRESHOLDS = (0.0, 0.3)  # off, and one that skips steps on the tiny model


def conditioning(engine, guidance: float = 6.0):
    """Text, global and local conditioning of a fixed tiny generation."""
    id_cond, hidden = identity()
    text = engine.encode_text(PROMPT, "ugly", with_negative=guidance > 1)
    return text, engine.encode_global(face_image(), height=32, width=48), engine.encode_local(id_cond, hidden)


def run(engine, teacache: float, guidance: float = 6.0) -> dict:
    """Latents (and step-cache stats) of a fixed tiny generation (the same call the single-process side makes)."""
    text, global_cond, local = conditioning(engine, guidance)
    cache = consisid_core.TeaCache(teacache) if teacache else None
    video = engine.denoise(text, global_cond, local, num_frames=9, num_inference_steps=6, guidance_scale=guidance,
                           seed=7, cache=cache)
    return {"latents": video.latents, "skipped": cache.stats["skipped_steps"] if cache else []}


def main() -> None:
    model, out, layout = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    cfg, ulysses, ring = int(layout[0]), int(layout[1]), int(layout[2])
    plan = init_parallel(ParallelConfig(cfg_parallel=cfg == 2, ulysses_degree=ulysses, ring_degree=ring), device="cpu")
    engine = consisid_core.load_engine(model, device="cpu", dtype=torch.float32)
    engine.parallel = plan
    result = {teacache: run(engine, teacache) for teacache in THRESHOLDS}
    if plan.is_writer:
        torch.save(result, out)
    plan.close()


if __name__ == "__main__":
    main()
