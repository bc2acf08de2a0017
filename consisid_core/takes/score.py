"""Scoring takes against one reference photo: the face is found and encoded once, before any sampling."""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedInputError
from .rank import TakeScores


class TakeScorer:
    """Calls the paper's metrics (consisid_core.metrics.score_video) on a take; refuses a photo without a face now."""

    def __init__(self, models: Any, reference_photo: Any, prompt: str | None = None, protocol: str = "fixed") -> None:
        from ..metrics import encode_reference
        from ..metrics.protocol import check_protocol

        if models is None:
            raise UnsupportedInputError(
                "takes are ranked with the scoring models (buffalo_l, IR-101, Inception, CLIP), and none were given: "
                "load them (consisid_core.metrics.load_eval_models / ConsisID Eval Models Loader) or make 1 take")
        self.models = models
        self.protocol = check_protocol(protocol)
        self.prompt = prompt if prompt is not None and str(prompt).strip() else None
        self.reference = encode_reference(models, reference_photo)  # NoFaceError in one line, before sampling
        self.calls = 0

    def __call__(self, frames: Any, *, preview: bool = False, frame_gap: float = 1.0) -> TakeScores:
        """Scores of one take's frames; a preview's motion is divided by `frame_gap` (pixels per video frame)."""
        from ..metrics import score_video

        self.calls += 1
        scores = score_video(self.models, frames, self.reference, self.prompt, self.protocol)
        return TakeScores.from_video_scores(scores, preview=preview, motion_scale=1.0 / max(frame_gap, 1e-6))
