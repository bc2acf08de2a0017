"""The ranking rule on takes whose scores are known (hand-worked expected orders)."""

from __future__ import annotations

import pytest

from consisid_core.errors import UnsupportedInputError
from consisid_core.takes.rank import TakeScores, format_ranking, rank_takes


def s(arc: float, cur: float, motion: float = 2.0, clip: float | None = None, faces: int = 16) -> TakeScores:
    return TakeScores(arc, cur, motion, clip, faces, 16)


def order(ranking) -> list[int]:
    return [t.seed for t in ranking.takes]


def test_identity_first_mean_of_arc_and_cur():
    # identities: 10 -> 0.50, 11 -> 0.60, 12 -> 0.55 (Arc alone would put 12 first, Cur alone 11 and 10 tie)
    ranking = rank_takes([10, 11, 12], [s(0.50, 0.50), s(0.40, 0.80), s(0.70, 0.40)])
    assert order(ranking) == [11, 12, 10]
    assert ranking.winner.seed == 11
    assert "next best seed 12" in ranking.why


def test_static_take_cannot_win_whatever_its_identity():
    ranking = rank_takes([1, 2, 3], [s(0.9, 0.9, motion=0.05), s(0.5, 0.5), s(0.6, 0.6)], motion_floor=0.3)
    assert order(ranking) == [3, 2, 1]
    assert not ranking.takes[2].moving
    assert "moves less than the floor" in ranking.why


def test_all_static_compared_on_identity():
    ranking = rank_takes([1, 2], [s(0.4, 0.4, motion=0.1), s(0.6, 0.6, motion=0.0)], motion_floor=0.3)
    assert order(ranking) == [2, 1]
    assert "no take moves" in ranking.why


def test_clipscore_breaks_identity_ties_only():
    # 1 and 2 tie within 0.005 (0.600 vs 0.597): CLIP decides; 3 is clearly lower identity despite the best CLIP
    ranking = rank_takes([1, 2, 3], [s(0.6, 0.6, clip=25.0), s(0.597, 0.597, clip=30.0), s(0.5, 0.5, clip=40.0)])
    assert order(ranking) == [2, 1, 3]
    assert "CLIPScore 30.00 > 25.00" in ranking.why


def test_tie_without_clip_keeps_higher_identity_then_request_order():
    ranking = rank_takes([7, 8, 9], [s(0.5, 0.5), s(0.502, 0.502), s(0.5, 0.5)])
    assert order(ranking) == [8, 7, 9]


def test_unfinished_takes_rank_after_finished():
    ranking = rank_takes([1, 2, 3], [s(0.9, 0.9), s(0.3, 0.3), s(0.5, 0.5)], finished=[False, True, True])
    assert order(ranking) == [3, 2, 1]
    assert not ranking.takes[-1].finished


def test_bad_inputs():
    with pytest.raises(UnsupportedInputError):
        rank_takes([1, 2], [s(0.5, 0.5)])
    with pytest.raises(UnsupportedInputError):
        rank_takes([1], [s(0.5, 0.5)], motion_floor=float("nan"))


def test_table_lists_every_take_best_first():
    text = format_ranking(rank_takes([5, 6], [s(0.2, 0.2, clip=20.0), s(0.4, 0.4)]))
    lines = text.splitlines()
    assert lines[1].split()[:2] == ["1", "6"] and "kept" in lines[1]
    assert lines[2].split()[:2] == ["2", "5"]
    assert lines[-1].startswith("why: seed 6 kept")
