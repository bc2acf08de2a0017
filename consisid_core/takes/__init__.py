"""Takes: several seeds for one request, ranked by the paper's identity scores, the best one kept.

`plan_takes` checks the request, `TakeScorer` encodes the reference face once, `run_takes` generates and
ranks (`rank_takes` is the one documented rule), `format_ranking` prints the table.
"""

from .plan import MAX_TAKES, TakePlan, plan_takes, take_seeds
from .rank import IDENTITY_TIE, MOTION_FLOOR, RankedTake, Ranking, TakeScores, format_ranking, rank_takes
from .run import TakeEvent, TakeRequest, TakesResult, prepare, run_takes
from .score import TakeScorer

__all__ = [
    "IDENTITY_TIE", "MAX_TAKES", "MOTION_FLOOR", "RankedTake", "Ranking", "TakeEvent", "TakePlan", "TakeRequest",
    "TakeScorer", "TakeScores", "TakesResult", "format_ranking", "plan_takes", "prepare", "rank_takes", "run_takes",
    "take_seeds",
]
