"""A picture of the takes' scores: FaceSim-Arc/Cur bars per take (rank order), the kept take marked, motion and
CLIPScore under each, takes below the motion floor or stopped early greyed out."""

from __future__ import annotations

import cv2
import numpy as np

from ..metrics.plots import ARC_RGB, CUR_RGB, NOFACE_RGB
from .rank import Ranking

_FONT = cv2.FONT_HERSHEY_SIMPLEX
KEPT_RGB = (44, 160, 44)
MUTED = 0.45  # how much a static or stopped take's bars fade to white


def _fade(colour: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    return tuple(int(round(c + (255 - c) * amount)) for c in colour)


def takes_plot(ranking: Ranking, title: str = "", size: tuple[int, int] = (720, 400)) -> np.ndarray:
    """RGB uint8 HxWx3: one group of bars per take, best first, on a 0..1 FaceSim axis."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 48, w - 16, 44, h - 92
    takes = ranking.takes
    slot = (right - left) / max(len(takes), 1)

    def y_of(v: float) -> int:
        return int(round(bottom - (bottom - top) * float(np.clip(v, 0.0, 1.0))))

    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        cv2.line(img, (left, y_of(tick)), (right, y_of(tick)), (225, 225, 225), 1)
        cv2.putText(img, f"{tick:.2f}", (6, y_of(tick) + 4), _FONT, 0.35, (80, 80, 80), 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (right, bottom), (120, 120, 120), 1)
    for k, take in enumerate(takes):
        x0 = left + slot * k
        bar = max(4, int(slot * 0.28))
        centre = int(x0 + slot / 2)
        muted = MUTED if (not take.moving or not take.finished) else 0.0
        s = take.scores
        for offset, value, colour in ((-bar, s.facesim_arc, ARC_RGB), (0, s.facesim_cur, CUR_RGB)):
            cv2.rectangle(img, (centre + offset, y_of(value)), (centre + offset + bar - 1, bottom),
                          _fade(colour, muted), -1)
        y_id = y_of(s.identity)
        cv2.line(img, (centre - bar - 3, y_id), (centre + bar + 2, y_id), (30, 30, 30), 2, cv2.LINE_AA)
        if k == 0:
            cv2.rectangle(img, (int(x0) + 3, top + 2), (int(x0 + slot) - 3, bottom - 1), KEPT_RGB, 2, cv2.LINE_AA)
            cv2.putText(img, "kept", (centre - 14, top + 16), _FONT, 0.45, KEPT_RGB, 1, cv2.LINE_AA)
        lines = [f"#{take.rank} seed {take.seed}"[:22], f"motion {s.motion:.2f}",
                 "clip -" if s.clipscore is None else f"clip {s.clipscore:.1f}"]
        if not take.finished:
            lines.append("stopped early")
        elif not take.moving:
            lines.append("below floor")
        for row, text in enumerate(lines):
            colour = NOFACE_RGB if row == 3 else (40, 40, 40)
            scale = 0.36 if slot > 110 else 0.3
            width = cv2.getTextSize(text, _FONT, scale, 1)[0][0]
            cv2.putText(img, text, (centre - width // 2, bottom + 16 + 14 * row), _FONT, scale, colour, 1, cv2.LINE_AA)
    cv2.putText(img, (title or f"{len(takes)} takes, identity = (Arc + Cur) / 2")[:90], (left, 26), _FONT, 0.45,
                (20, 20, 20), 1, cv2.LINE_AA)
    x = left
    for text, colour in (("FaceSim-Arc", ARC_RGB), ("FaceSim-Cur", CUR_RGB), ("identity", (30, 30, 30))):
        cv2.line(img, (x, h - 12), (x + 18, h - 12), colour, 3)
        cv2.putText(img, text, (x + 22, h - 8), _FONT, 0.4, (40, 40, 40), 1, cv2.LINE_AA)
        x += 30 + 8 * len(text)
    cv2.putText(img, f"motion floor {ranking.motion_floor:g} px/frame", (x + 10, h - 8), _FONT, 0.4, (80, 80, 80), 1,
                cv2.LINE_AA)
    return img
