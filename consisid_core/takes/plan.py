"""Which seeds a takes request runs, and whether it picks early: every check before anything is sampled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .. import validate
from ..errors import UnsupportedInputError

MAX_TAKES = 16  # each take costs a whole generation; more than this is almost surely a typo


@dataclass(frozen=True)
class TakePlan:
    """The seeds in request order; with `pick_step`, every take stops there and only the best `keep` finish."""

    seeds: tuple[int, ...]
    steps: int
    pick_step: int | None = None
    keep: int = 1

    @property
    def count(self) -> int:
        return len(self.seeds)

    @property
    def early(self) -> bool:
        return self.pick_step is not None

    @property
    def planned_steps(self) -> int:
        """Denoising steps the plan runs: N x steps, or N x pick_step + keep x steps with early pick (a finished
        take reruns its first steps, as the engine cannot resume a stopped loop)."""
        if self.pick_step is None:
            return self.count * self.steps
        return self.count * self.pick_step + self.keep * self.steps


def take_seeds(seed: int, takes: int) -> tuple[int, ...]:
    """seed, seed+1, ... (modulo 2^64, as every seed), `takes` of them."""
    check_take_count(takes)
    first = validate.normalise_seed(seed)
    return tuple((first + i) % validate.SEED_MODULUS for i in range(takes))


def check_take_count(takes: object) -> int:
    """1..MAX_TAKES takes, refused in one line otherwise."""
    if isinstance(takes, bool) or not isinstance(takes, int):
        raise UnsupportedInputError(f"takes must be a whole number from 1 to {MAX_TAKES}; got {takes!r}")
    if takes < 1:
        raise UnsupportedInputError(f"takes must be at least 1; got {takes}")
    if takes > MAX_TAKES:
        raise UnsupportedInputError(
            f"takes must be at most {MAX_TAKES} (each take is a whole generation); got {takes}")
    return takes


def pick_step(fraction: float, steps: int) -> int:
    """The step early pick stops at: round(fraction x steps), at least 1 and before the last step."""
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        raise UnsupportedInputError(f"pick-at must be a fraction of the steps such as 0.3; got {fraction!r}") from None
    if not 0.0 < fraction < 1.0:  # also refuses NaN
        raise UnsupportedInputError(f"pick-at must be between 0 and 1 (a fraction of the steps, e.g. 0.3); got {fraction}")
    step = max(1, round(fraction * steps))
    if step >= steps:
        raise UnsupportedInputError(
            f"pick-at {fraction:g} of {steps} steps leaves no step to finish; use a smaller fraction or more steps")
    return step


def plan_takes(seed: int = 42, takes: int = 1, steps: int = 50, *, seeds: Sequence[int] | None = None,
               pick_at: float | None = None, keep: int = 1) -> TakePlan:
    """Check a takes request: `takes` seeds from `seed` (or an explicit `seeds` list), early pick at `pick_at`
    (a fraction of `steps`, None = off) finishing the best `keep`."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UnsupportedInputError(f"steps must be a whole number of at least 1; got {steps!r}")
    if seeds is not None:
        chosen = tuple(validate.normalise_seed(s) for s in seeds)
        check_take_count(len(chosen))
        if len(set(chosen)) != len(chosen):
            raise UnsupportedInputError(f"the take seeds repeat ({list(chosen)}); a repeated seed is the same video")
    else:
        chosen = take_seeds(seed, takes)
    if pick_at is None:
        return TakePlan(chosen, steps)
    if len(chosen) < 2:
        raise UnsupportedInputError("pick-at needs at least 2 takes to pick from")
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep < len(chosen):
        raise UnsupportedInputError(
            f"keep must be from 1 to {len(chosen) - 1} (fewer than the {len(chosen)} takes); got {keep!r}")
    return TakePlan(chosen, steps, pick_step(pick_at, steps), keep)
