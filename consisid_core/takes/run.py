"""Generate the takes of one request and keep the best: seed-independent work once, then one run per seed.

Text embeddings, the encoded face and the face tokens are made once; each take is `engine.denoise` +
`engine.decode` with its own seed, exactly what a single run with that seed does (TeaCache, fp8, LoRA and the
memory modes are engine settings, so they apply to every take). Early pick stops every take at a step, scores
a preview of its predicted clean video and finishes only the best `keep` (from the start: the engine cannot
resume a stopped loop, so those reruns cost `keep x pick_step` steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from ..cancel import checkpoint
from ..engine.denoise import StepCallback
from ..engine.stages import GlobalConditioning, LatentVideo, LocalConditioning, TextConditioning
from ..errors import UnsupportedInputError
from .plan import TakePlan
from .preview import CleanPrediction, decode_preview
from .rank import IDENTITY_TIE, MOTION_FLOOR, Ranking, TakeScores, rank_takes

Scorer = Callable[..., TakeScores]  # scorer(frames, preview=False, frame_gap=1.0), e.g. a TakeScorer


@dataclass
class TakeRequest:
    """Everything of a generation except the seed (the arguments of `ConsisIDEngine.generate`)."""

    prompt: str
    negative_prompt: str = ""
    image: Any = None
    id_cond: torch.Tensor | None = None
    id_vit_hidden: Sequence[torch.Tensor] | None = None
    kps_cond: Any = None
    height: int | None = None
    width: int | None = None
    num_frames: int | None = None
    num_inference_steps: int = 50
    guidance_scale: float = 6.0
    use_dynamic_cfg: bool = False
    face_scale: float | None = None
    noise_device: str | None = None
    cache: Any = None  # a consisid_core TeaCache
    vae_tiling: bool = False
    vae_slicing: bool = False


@dataclass(frozen=True)
class TakeEvent:
    """Progress: take `index` (0-based) of `count` starts; phase 'take' (whole run), 'preview' (up to the pick
    step) or 'finish' (a picked take run to the end); `steps` it will run."""

    index: int
    count: int
    seed: int
    phase: str
    steps: int


@dataclass
class Shared:
    """The seed-independent conditioning, made once for all takes."""

    text: TextConditioning
    global_cond: GlobalConditioning
    local: LocalConditioning
    num_frames: int


@dataclass
class TakesResult:
    """The kept take's frames and seed, the ranking, and (when asked) every finished take's frames."""

    frames: torch.Tensor
    seed: int
    ranking: Ranking
    takes: dict[int, torch.Tensor] = field(default_factory=dict)
    preview_scores: dict[int, TakeScores] = field(default_factory=dict)
    steps_run: int = 0


class _Stop(Exception):
    """Raised from the step callback to end a take at the early-pick step."""


def prepare(engine, request: TakeRequest) -> Shared:
    """Check the settings and make the seed-independent conditioning (text, face image, face tokens) once."""
    from ..engine import checks

    if request.image is None:
        raise UnsupportedInputError("image (the aligned face from the face pipeline) is required")
    if getattr(engine, "parallel", None) is not None:
        raise UnsupportedInputError("takes do not run across several GPUs yet; make takes without the parallel layout")
    info = engine.info
    height = info.native_height if request.height is None else request.height
    width = info.native_width if request.width is None else request.width
    frames = engine.check_settings(height, width, info.native_frames if request.num_frames is None else request.num_frames)
    checks.check_steps_and_guidance(request.num_inference_steps, request.guidance_scale)
    engine.make_generator(0, request.noise_device)  # a bad noise_device fails before any model runs
    text = engine.encode_text(request.prompt, request.negative_prompt, with_negative=request.guidance_scale > 1.0)
    global_cond = engine.encode_global(request.image, request.kps_cond, height, width)
    local = engine.encode_local(request.id_cond, request.id_vit_hidden, request.face_scale)
    return Shared(text, global_cond, local, frames)


def _denoise(engine, shared: Shared, request: TakeRequest, seed: int, callback: StepCallback | None) -> LatentVideo:
    return engine.denoise(
        shared.text, shared.global_cond, shared.local, num_frames=shared.num_frames,
        num_inference_steps=request.num_inference_steps, guidance_scale=request.guidance_scale,
        use_dynamic_cfg=request.use_dynamic_cfg, seed=seed, callback=callback, snap_frames=False,
        noise_device=request.noise_device, cache=request.cache,
    )


class _Counter:
    """Counts denoising steps and forwards them to the caller's callback."""

    def __init__(self, callback: StepCallback | None) -> None:
        self.callback, self.steps = callback, 0

    def wrap(self, stop_at: int | None = None) -> StepCallback:
        def step(i: int, total: int, latents: torch.Tensor) -> None:
            self.steps += 1
            if self.callback is not None:
                self.callback(i, total, latents)
            if stop_at is not None and i >= stop_at:
                raise _Stop

        return step


def preview_take(engine, shared: Shared, request: TakeRequest, seed: int, pick_step: int, counter: _Counter,
                 scorer: Scorer, *, run_to_end: bool = False) -> tuple[TakeScores, LatentVideo | None]:
    """Run a take to `pick_step`, score its predicted clean video; `run_to_end` keeps going (for measurements)
    and also returns the finished latents."""
    watcher = CleanPrediction(engine, request.num_inference_steps, request.guidance_scale, request.use_dynamic_cfg,
                              pick_step)
    video = None
    with watcher.watch(engine):
        try:
            video = _denoise(engine, shared, request, seed, counter.wrap(None if run_to_end else pick_step))
        except _Stop:
            pass
    g = shared.global_cond
    frames, gap = decode_preview(engine, watcher.latents, shared.num_frames, g.height, g.width)
    return scorer(frames, preview=True, frame_gap=gap), video


def early_pick(engine, shared: Shared, request: TakeRequest, plan: TakePlan, scorer: Scorer, counter: "_Counter",
               on_take: Callable[[TakeEvent], None] | None, motion_floor: float,
               identity_tie: float) -> tuple[list[int], dict[int, TakeScores]]:
    """Preview every take at the plan's pick step; returns the seeds to finish (request order) and the previews."""
    cancel = getattr(engine, "should_cancel", None)
    previews: dict[int, TakeScores] = {}
    for i, seed in enumerate(plan.seeds):
        checkpoint(cancel)
        if on_take is not None:
            on_take(TakeEvent(i, plan.count, seed, "preview", plan.pick_step))
        previews[seed], _ = preview_take(engine, shared, request, seed, plan.pick_step, counter, scorer)
    ranking = rank_takes(plan.seeds, [previews[s] for s in plan.seeds], motion_floor=motion_floor,
                         identity_tie=identity_tie)
    picked = {t.seed for t in ranking.takes[: plan.keep]}
    return [s for s in plan.seeds if s in picked], previews


def _check_scorer(plan: TakePlan, scorer: Scorer | None, needed: bool) -> None:
    if scorer is None and needed:
        raise UnsupportedInputError(
            f"{plan.count} takes need the scoring models to pick the best (none given); give them or make 1 take")


@dataclass
class SampledTakes:
    """Finished takes' frames in request order, and the early-pick previews' scores (of every take)."""

    frames: dict[int, torch.Tensor]
    preview_scores: dict[int, TakeScores]
    steps_run: int


def sample_takes(engine, request: TakeRequest, plan: TakePlan, scorer: Scorer | None = None, *,
                 on_take: Callable[[TakeEvent], None] | None = None, callback: StepCallback | None = None,
                 motion_floor: float = MOTION_FLOOR, identity_tie: float = IDENTITY_TIE,
                 shared: Shared | None = None) -> SampledTakes:
    """Make and decode every take (early pick, when planned, needs `scorer`); ranking is left to the caller."""
    _check_scorer(plan, scorer, plan.early)
    shared = shared or prepare(engine, request)
    counter = _Counter(callback)
    to_finish, previews = list(plan.seeds), {}
    if plan.early:
        to_finish, previews = early_pick(engine, shared, request, plan, scorer, counter, on_take, motion_floor,
                                         identity_tie)
    frames = {}
    for i, seed in enumerate(to_finish):
        checkpoint(getattr(engine, "should_cancel", None))
        if on_take is not None:
            on_take(TakeEvent(i, len(to_finish), seed, "finish" if plan.early else "take", plan.steps))
        video = _denoise(engine, shared, request, seed, counter.wrap())
        frames[seed] = engine.decode(video, request.vae_tiling, request.vae_slicing)
    return SampledTakes(frames, previews, counter.steps)


def run_takes(engine, request: TakeRequest, plan: TakePlan, scorer: Scorer | None, *, keep_takes: bool = False,
              on_take: Callable[[TakeEvent], None] | None = None, callback: StepCallback | None = None,
              motion_floor: float = MOTION_FLOOR, identity_tie: float = IDENTITY_TIE,
              shared: Shared | None = None) -> TakesResult:
    """Make the plan's takes, rank them (consisid_core.takes.rank) and return the best; see the module docstring.

    `scorer` may be None only for a single take. `callback(step, total, latents)` sees every denoising step of
    every take, `on_take` each take's start. `shared` reuses conditioning from `prepare`."""
    if plan.steps != request.num_inference_steps:
        raise UnsupportedInputError(f"the plan has {plan.steps} steps but the request {request.num_inference_steps}")
    _check_scorer(plan, scorer, plan.count > 1 or plan.early)
    shared = shared or prepare(engine, request)
    counter = _Counter(callback)
    cancel = getattr(engine, "should_cancel", None)
    seeds = list(plan.seeds)
    previews: dict[int, TakeScores] = {}
    to_finish = seeds
    if plan.early:
        to_finish, previews = early_pick(engine, shared, request, plan, scorer, counter, on_take, motion_floor,
                                         identity_tie)

    finished: dict[int, TakeScores] = {}
    latents: dict[int, LatentVideo] = {}
    frames_of: dict[int, torch.Tensor] = {}
    leader = None
    for i, seed in enumerate(to_finish):
        checkpoint(cancel)
        if on_take is not None:
            on_take(TakeEvent(i, len(to_finish), seed, "finish" if plan.early else "take", plan.steps))
        video = _denoise(engine, shared, request, seed, counter.wrap())
        frames = engine.decode(video, request.vae_tiling, request.vae_slicing)
        latents[seed] = video
        frames_of[seed] = frames
        if scorer is not None:
            checkpoint(cancel)
            finished[seed] = scorer(frames)
            leader = rank_takes(list(finished), list(finished.values()), motion_floor=motion_floor,
                                identity_tie=identity_tie).winner.seed
        else:
            leader = seed
        if not keep_takes:  # hold the frames of the leader only; the others can be decoded again if needed
            frames_of = {s: f for s, f in frames_of.items() if s == leader}

    if scorer is None:
        ranking = rank_takes(seeds, [TakeScores(0.0, 0.0, 0.0)])
        ranking = Ranking(ranking.takes, f"seed {seeds[0]} kept (a single take, not scored).", motion_floor, identity_tie)
    else:
        ranking = rank_takes(seeds, [finished[s] if s in finished else previews[s] for s in seeds],
                             motion_floor=motion_floor, identity_tie=identity_tie,
                             finished=[s in finished for s in seeds])
    best = ranking.winner.seed
    if best not in frames_of:  # a later take changed the order among earlier ones (identity ties)
        frames_of[best] = engine.decode(latents[best], request.vae_tiling, request.vae_slicing)
    return TakesResult(frames_of[best], best, ranking, dict(frames_of) if keep_takes else {}, previews, counter.steps)
