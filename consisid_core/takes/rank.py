"""The one ranking rule of takes, and the table and sentence that explain it.

Rule (`rank_takes`; the README's "Takes" section says the same):

1. identity = (FaceSim-Arc + FaceSim-Cur) / 2, each the paper's clipped cosine to the reference face averaged
   over the scored frames with a face (0 when no frame shows a face), so 0..1, higher = more like the person.
2. Motion floor: a take whose motion (mean optical flow, pixels per frame) is below `motion_floor` is ranked
   after every take that moves enough, whatever its identity, so a near-static face cannot win. When no take
   clears the floor they are ranked among themselves by the same rule.
3. Takes are picked best first, one at a time: among the remaining takes (movers first, as in 2), those whose
   identity is within `identity_tie` of the best remaining identity count as tied; of those the highest
   CLIPScore wins (no prompt: the highest identity), and on equal scores the take asked for first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import UnsupportedInputError

MOTION_FLOOR = 0.3  # px/frame; not calibrated on real videos yet, see the README's "Takes" section
IDENTITY_TIE = 0.005  # identity differences up to this are noise between takes (FaceSim is 0..1)


@dataclass(frozen=True)
class TakeScores:
    """The scores the rule reads, for one take (final video, or an early preview)."""

    facesim_arc: float
    facesim_cur: float
    motion: float
    clipscore: float | None = None
    face_frames: int = 0
    scored_frames: int = 0
    preview: bool = False  # scored on an early preview, not on the finished video

    @property
    def identity(self) -> float:
        return (self.facesim_arc + self.facesim_cur) / 2.0

    @classmethod
    def from_video_scores(cls, scores, *, preview: bool = False, motion_scale: float = 1.0) -> "TakeScores":
        """From consisid_core.metrics VideoScores; `motion_scale` turns preview motion into pixels per video frame."""
        return cls(float(scores.facesim_arc), float(scores.facesim_cur), float(scores.motion) * motion_scale,
                   None if scores.clipscore is None else float(scores.clipscore), len(scores.face_frames),
                   int(len(scores.per_frame["frame_index"])), preview)


@dataclass(frozen=True)
class RankedTake:
    """One take's place in the ranking."""

    rank: int  # 1 = kept
    seed: int
    scores: TakeScores
    moving: bool  # motion >= the floor
    finished: bool = True  # False: stopped at the early pick


@dataclass(frozen=True)
class Ranking:
    """Takes best first, the rule's settings, and why the first one won."""

    takes: tuple[RankedTake, ...]
    why: str
    motion_floor: float = MOTION_FLOOR
    identity_tie: float = IDENTITY_TIE
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def winner(self) -> RankedTake:
        return self.takes[0]

    def as_rows(self) -> list[dict]:
        """One dict per take, best first (for JSON lines and CSV)."""
        return [{"rank": t.rank, "seed": t.seed, "arc_score": t.scores.facesim_arc, "cur_score": t.scores.facesim_cur,
                 "identity": t.scores.identity, "clip_score": t.scores.clipscore, "motion": t.scores.motion,
                 "face_frames": t.scores.face_frames, "scored_frames": t.scores.scored_frames, "moving": t.moving,
                 "finished": t.finished, "preview": t.scores.preview} for t in self.takes]


def _check(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise UnsupportedInputError(f"{name} must be a number of at least 0; got {value}")
    return value


def _pick(remaining: list[int], scores: Sequence[TakeScores], floor: float, tie: float) -> int:
    """Index of the next take by the rule (see the module docstring)."""
    movers = [i for i in remaining if scores[i].motion >= floor]
    pool = movers or remaining
    best = max(scores[i].identity for i in pool)
    tied = [i for i in pool if best - scores[i].identity <= tie]
    with_clip = [i for i in tied if scores[i].clipscore is not None]
    if with_clip:
        top = max(scores[i].clipscore for i in with_clip)
        return min(i for i in with_clip if scores[i].clipscore == top)
    top = max(scores[i].identity for i in tied)
    return min(i for i in tied if scores[i].identity == top)


def rank_takes(seeds: Sequence[int], scores: Sequence[TakeScores], *, motion_floor: float = MOTION_FLOOR,
               identity_tie: float = IDENTITY_TIE, finished: Sequence[bool] | None = None) -> Ranking:
    """Rank takes (in request order) by the rule above; `finished` False marks takes stopped at an early pick,
    which stay after every finished take."""
    if len(seeds) != len(scores) or not seeds:
        raise UnsupportedInputError(f"rank_takes needs one score per take; got {len(seeds)} seeds, {len(scores)} scores")
    floor, tie = _check(motion_floor, "motion_floor"), _check(identity_tie, "identity_tie")
    done = [True] * len(seeds) if finished is None else [bool(f) for f in finished]
    order: list[int] = []
    for group in ([i for i in range(len(seeds)) if done[i]], [i for i in range(len(seeds)) if not done[i]]):
        remaining = list(group)
        while remaining:
            nxt = _pick(remaining, scores, floor, tie)
            order.append(nxt)
            remaining.remove(nxt)
    ranked = tuple(RankedTake(rank + 1, int(seeds[i]), scores[i], scores[i].motion >= floor, done[i])
                   for rank, i in enumerate(order))
    return Ranking(ranked, explain(ranked, floor, tie), floor, tie)


def explain(ranked: Sequence[RankedTake], floor: float, tie: float) -> str:
    """One sentence: why the first take beat the others."""
    win = ranked[0]
    head = f"seed {win.seed} kept: identity {win.scores.identity:.4f} (Arc {win.scores.facesim_arc:.4f}, " \
           f"Cur {win.scores.facesim_cur:.4f}), motion {win.scores.motion:.2f} px/frame"
    if len(ranked) == 1:
        return head + " (the only take)."
    rivals = [t for t in ranked[1:] if t.finished]
    parts = []
    if not win.moving:
        parts.append(f"no take moves at least {floor:g} px/frame, so all were compared on identity")
    static_better = [t for t in rivals if not t.moving and win.moving and t.scores.identity > win.scores.identity]
    if static_better:
        seeds = ", ".join(str(t.seed) for t in static_better)
        parts.append(f"seed {seeds} scored higher identity but moves less than the floor {floor:g} px/frame")
    movers = [t for t in rivals if t.moving == win.moving]
    if movers:
        second = movers[0]
        gap = win.scores.identity - second.scores.identity
        if gap > tie:
            parts.append(f"next best seed {second.seed}: identity {second.scores.identity:.4f} ({gap:.4f} lower)")
        elif win.scores.clipscore is not None and second.scores.clipscore is not None \
                and win.scores.clipscore != second.scores.clipscore:
            parts.append(f"identity tied within {tie:g} with seed {second.seed} ({second.scores.identity:.4f}); "
                         f"CLIPScore {win.scores.clipscore:.2f} > {second.scores.clipscore:.2f}")
        else:
            parts.append(f"identity tied within {tie:g} with seed {second.seed}; the earlier take is kept")
    if win.scores.face_frames == 0:
        parts.append("no face was found in the kept take (every take scores identity 0 without a face)")
    stopped = [t for t in ranked if not t.finished]
    if stopped:
        parts.append(f"{len(stopped)} take(s) stopped at the early pick")
    return head + ("; " + "; ".join(parts) if parts else "") + "."


def format_ranking(ranking: Ranking) -> str:
    """A fixed-width table, best first, and the reason line."""
    lines = [f"{'rank':>4}  {'seed':>20}  {'arc':>6}  {'cur':>6}  {'identity':>8}  {'clip':>6}  {'motion':>6}  "
             f"{'faces':>5}  note"]
    for t in ranking.takes:
        s = t.scores
        clip = "-" if s.clipscore is None else f"{s.clipscore:.2f}"
        notes = []
        if t.rank == 1:
            notes.append("kept")
        if not t.moving:
            notes.append(f"below motion floor {ranking.motion_floor:g}")
        if not t.finished:
            notes.append("stopped early (preview scores)")
        elif s.preview:
            notes.append("preview scores")
        lines.append(f"{t.rank:>4}  {t.seed:>20}  {s.facesim_arc:6.4f}  {s.facesim_cur:6.4f}  {s.identity:8.4f}  "
                     f"{clip:>6}  {s.motion:6.2f}  {s.face_frames:>2}/{s.scored_frames:<2}  {', '.join(notes)}")
    lines.append(f"why: {ranking.why}")
    lines.extend(ranking.notes)
    return "\n".join(lines)
