"""Per-frame FaceSim plot drawn with OpenCV: Arc and Cur lines, frames without a face marked in red."""

from __future__ import annotations

import cv2
import numpy as np

ARC_RGB, CUR_RGB, NOFACE_RGB = (31, 119, 180), (255, 127, 14), (214, 39, 40)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def facesim_plot(per_frame: dict[str, np.ndarray], title: str = "", size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """An RGB uint8 image (HxWx3) of FaceSim-Arc/Cur per scored frame on a 0..1 axis."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 48, w - 16, 40, h - 44
    frames = np.asarray(per_frame["frame_index"])
    arc, cur = np.asarray(per_frame["facesim_arc"], float), np.asarray(per_frame["facesim_cur"], float)
    n = len(frames)
    xs = [left + (right - left) * (i / max(n - 1, 1)) for i in range(n)]

    def y_of(v: float) -> int:
        return int(round(bottom - (bottom - top) * float(np.clip(v, 0.0, 1.0))))

    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):  # grid and y labels
        cv2.line(img, (left, y_of(tick)), (right, y_of(tick)), (225, 225, 225), 1)
        cv2.putText(img, f"{tick:.2f}", (4, y_of(tick) + 4), _FONT, 0.35, (80, 80, 80), 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (right, bottom), (120, 120, 120), 1)
    for i, x in enumerate(xs):
        if np.isnan(arc[i]):  # no face: shaded column and a red cross on the axis
            cv2.rectangle(img, (int(x) - 5, top + 1), (int(x) + 5, bottom - 1), (250, 222, 222), -1)
            cv2.drawMarker(img, (int(x), bottom - 8), NOFACE_RGB, cv2.MARKER_TILTED_CROSS, 10, 2)
        if n <= 24 or i % max(1, n // 12) == 0:
            cv2.putText(img, str(int(frames[i])), (int(x) - 6, bottom + 14), _FONT, 0.33, (80, 80, 80), 1, cv2.LINE_AA)
    for values, colour in ((arc, ARC_RGB), (cur, CUR_RGB)):
        points = [(int(x), y_of(v)) for x, v in zip(xs, values) if not np.isnan(v)]
        for a, b in zip(points[:-1], points[1:]):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for p in points:
            cv2.circle(img, p, 3, colour, -1, cv2.LINE_AA)
    cv2.putText(img, title[:80], (left, 24), _FONT, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    legend = [("FaceSim-Arc", ARC_RGB), ("FaceSim-Cur", CUR_RGB), ("no face", NOFACE_RGB)]
    x = left
    for text, colour in legend:
        cv2.line(img, (x, h - 12), (x + 18, h - 12), colour, 3)
        cv2.putText(img, text, (x + 22, h - 8), _FONT, 0.4, (40, 40, 40), 1, cv2.LINE_AA)
        x += 30 + 8 * len(text)
    cv2.putText(img, "frame", (right - 40, h - 8), _FONT, 0.4, (80, 80, 80), 1, cv2.LINE_AA)
    return img
