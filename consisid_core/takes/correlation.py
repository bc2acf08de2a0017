"""How well an early preview predicts the finished take: rank correlation of preview and final identity."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .plan import pick_step
from .preview import CleanPrediction, decode_preview
from .rank import TakeScores
from .run import Scorer, TakeRequest, _denoise, prepare


def _ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    x = np.asarray(values, np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's on average ranks); NaN when either side is constant."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("spearman needs two equally long sequences of at least 2 values")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


@dataclass
class EarlyVsFinal:
    """Per seed: the preview's scores at each pick step and the finished take's scores."""

    seeds: list[int]
    preview: dict[int, list[TakeScores]]  # pick step -> scores per seed
    final: list[TakeScores]
    steps: int

    def identity_correlation(self, step: int) -> float:
        return spearman([s.identity for s in self.preview[step]], [s.identity for s in self.final])

    def table(self) -> str:
        steps = sorted(self.preview)
        head = "".join(f"  {f'step {k}':>9}" for k in steps)
        lines = [f"identity (FaceSim (Arc+Cur)/2) of previews and of the finished takes ({self.steps} steps)",
                 f"{'seed':>20}{head}  {'final':>9}"]
        for i, seed in enumerate(self.seeds):
            row = "".join(f"  {self.preview[k][i].identity:9.4f}" for k in steps)
            lines.append(f"{seed:>20}{row}  {self.final[i].identity:9.4f}")
        for k in steps:
            lines.append(f"Spearman rank correlation, preview at step {k} ({k / self.steps:.0%}) vs final: "
                         f"{self.identity_correlation(k):.3f}")
        return "\n".join(lines)


def early_vs_final(engine, request: TakeRequest, seeds: Sequence[int], fractions: Sequence[float],
                   scorer: Scorer) -> EarlyVsFinal:
    """Run every seed to the end once, scoring the preview at each fraction's pick step and the finished video."""
    steps = sorted({pick_step(f, request.num_inference_steps) for f in fractions})
    shared = prepare(engine, request)
    g = shared.global_cond
    previews: dict[int, list[TakeScores]] = {k: [] for k in steps}
    finals = []
    for seed in seeds:
        watchers = [CleanPrediction(engine, request.num_inference_steps, request.guidance_scale,
                                    request.use_dynamic_cfg, k) for k in steps]
        with contextlib.ExitStack() as stack:
            for watcher in watchers:
                stack.enter_context(watcher.watch(engine))
            video = _denoise(engine, shared, request, seed, None)
        for k, watcher in zip(steps, watchers):
            frames, gap = decode_preview(engine, watcher.latents, shared.num_frames, g.height, g.width)
            previews[k].append(scorer(frames, preview=True, frame_gap=gap))
        finals.append(scorer(engine.decode(video, request.vae_tiling, request.vae_slicing)))
    return EarlyVsFinal(list(seeds), previews, finals, request.num_inference_steps)
