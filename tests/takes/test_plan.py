"""Takes requests are checked in one line each before anything runs."""

from __future__ import annotations

import pytest

from consisid_core.errors import UnsupportedInputError
from consisid_core.takes.plan import MAX_TAKES, plan_takes


def test_seeds_count_up_from_the_seed_modulo_2_64():
    assert plan_takes(41, 3).seeds == (41, 42, 43)
    assert plan_takes(2**64 - 1, 2).seeds == (2**64 - 1, 0)
    assert plan_takes(seeds=[5, 9]).seeds == (5, 9)


@pytest.mark.parametrize("takes, words", [(0, "at least 1"), (-2, "at least 1"), (MAX_TAKES + 1, f"at most {MAX_TAKES}"),
                                          (2.5, "whole number"), (True, "whole number")])
def test_bad_take_counts(takes, words):
    with pytest.raises(UnsupportedInputError, match=words) as exc:
        plan_takes(1, takes)
    assert "\n" not in str(exc.value)


def test_repeated_seeds_refused():
    with pytest.raises(UnsupportedInputError, match="repeat"):
        plan_takes(seeds=[3, 3])


def test_early_pick_step_and_cost():
    plan = plan_takes(1, 4, 50, pick_at=0.3, keep=1)
    assert plan.pick_step == 15
    assert plan.planned_steps == 4 * 15 + 50
    assert plan_takes(1, 4, 50).planned_steps == 200


@pytest.mark.parametrize("kwargs, words", [
    (dict(takes=1, pick_at=0.5), "at least 2 takes"), (dict(takes=3, pick_at=0.0), "between 0 and 1"),
    (dict(takes=3, pick_at=1.0), "between 0 and 1"), (dict(takes=3, pick_at=0.5, keep=3), "keep must be"),
    (dict(takes=3, steps=2, pick_at=0.9), "no step to finish"),
])
def test_bad_early_pick(kwargs, words):
    kwargs = {"steps": 10, **kwargs}
    with pytest.raises(UnsupportedInputError, match=words):
        plan_takes(1, **kwargs)
