"""The takes scorer: the reference face is checked and encoded once, scores are the metrics' own."""

from __future__ import annotations

import numpy as np
import pytest

from consisid_core.errors import ConsisIDError, UnsupportedInputError
from consisid_core.metrics import score_video
from consisid_core.takes import TakeScorer


def pan(photo: np.ndarray, frames: int = 6, step: int = 6) -> np.ndarray:
    from metrics_fixtures import pan as metrics_pan

    return metrics_pan(photo, frames, step=step)


def test_scores_equal_score_video_and_reference_is_encoded_once(light_eval_models, astronaut, monkeypatch):
    import consisid_core.metrics as metrics

    encoded = []
    original = metrics.encode_reference
    monkeypatch.setattr(metrics, "encode_reference", lambda *a: encoded.append(1) or original(*a))
    scorer = TakeScorer(light_eval_models, astronaut, "a woman in a space suit")
    video = pan(astronaut)
    takes = [scorer(video), scorer(video[::-1].copy())]
    assert len(encoded) == 1
    direct = score_video(light_eval_models, video, astronaut, "a woman in a space suit")
    assert takes[0].facesim_arc == direct.facesim_arc and takes[0].facesim_cur == direct.facesim_cur
    assert takes[0].clipscore == direct.clipscore and takes[0].motion == direct.motion
    assert takes[0].face_frames == len(direct.face_frames) > 0


def test_preview_motion_is_per_video_frame(light_eval_models, astronaut):
    scorer = TakeScorer(light_eval_models, astronaut)
    video = pan(astronaut)
    assert scorer(video, preview=True, frame_gap=4.0).motion == pytest.approx(scorer(video).motion / 4.0)
    assert scorer(video).clipscore is None  # no prompt


def test_reference_without_face_refused_in_one_line(light_eval_models):
    coffee = pytest.importorskip("skimage.data").coffee()
    with pytest.raises(ConsisIDError, match="No face was found in the reference photo") as exc:
        TakeScorer(light_eval_models, coffee)
    assert "\n" not in str(exc.value)


def test_no_scoring_models_refused(astronaut):
    with pytest.raises(UnsupportedInputError, match="scoring models"):
        TakeScorer(None, astronaut)
