"""Box helpers: greedy NMS identical to torchvision.ops.nms (CPU) and IoU, without torchvision."""

from __future__ import annotations

import numpy as np
import torch


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, highest score first (same order and ties as torchvision)."""
    boxes = np.asarray(boxes, dtype=np.float32)
    scores32 = np.asarray(scores, dtype=np.float32)
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    # torchvision's kernel sorts with a stable descending sort: equal scores keep their input order
    order = torch.sort(torch.from_numpy(np.ascontiguousarray(scores32)), dim=0, descending=True, stable=True)[1].numpy()
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, i]) for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(boxes.shape[0], dtype=bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1 :]
        rest = rest[~suppressed[rest]]
        if rest.size == 0:
            continue
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        ovr = inter / (areas[i] + areas[rest] - inter)
        # the C++ kernel compares a float against a double threshold
        suppressed[rest[ovr.astype(np.float64) > float(iou_threshold)]] = True
    return np.asarray(keep, dtype=np.int64)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one x1,y1,x2,y2 box with each of `boxes`."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    box = np.asarray(box, dtype=np.float64)
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
