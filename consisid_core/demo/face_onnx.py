"""Tiny antelopev2 stand-ins written with onnx.helper: an SCRFD-shaped detector, an ArcFace-shaped
recogniser and (optionally) 2-D/3-D landmark and gender/age models, routed by insightface like the real pack.

The detector scores anchors from average-pooled colours through two random 1x1 convolutions, so it
fires (somewhere) on real photos. `PlantedFace` adds one fixed detection at given 5 points instead,
which makes the default photo give a real, well-aligned face with random weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DET_SIZE = 640
STRIDES = (8, 16, 32)
HIDDEN = 8
# 5 points relative to an anchor centre, in units of the (square) box side
KPS_LAYOUT = np.array([[-0.18, -0.1], [0.18, -0.1], [0.0, 0.08], [-0.15, 0.27], [0.15, 0.27]])
BOX_HALF_STRIDES = 3.0  # default box: 6 strides wide
FIRE_OFFSET = 1.0  # score logit of a photo's best anchor (sigmoid 0.73 > insightface's 0.5)
FIRE_COUNT = {8: 6, 16: 3, 32: 2}  # anchors over the threshold on the calibration photo, per stride


@dataclass(frozen=True)
class PlantedFace:
    """A face the tiny detector always reports, given in the pixel frame of a photo of `image_size`."""

    image_size: tuple[int, int]  # (width, height)
    bbox: tuple[float, float, float, float]
    kps: tuple[tuple[float, float], ...]


# skimage/NASA astronaut = consisid_core/assets/default_face.png; points from a face-mesh model
DEFAULT_FACE = PlantedFace(
    image_size=(512, 512),
    bbox=(176.0, 56.0, 274.0, 170.0),
    kps=((204.2, 102.3), (247.1, 104.4), (224.1, 131.2), (201.8, 139.5), (245.9, 142.2)),
)


def _helpers():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    return onnx, TensorProto, helper, numpy_helper


def _save(graph, path: Path) -> None:
    onnx, _, helper, _ = _helpers()
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="consisid-tiny")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_detector(path: Path, rng: np.random.Generator, calib_bgr: np.ndarray | None = None,
                   plant: PlantedFace | None = None, fires: bool = True) -> None:
    """SCRFD-like detector: 9 outputs (scores, boxes, 5 points at strides 8/16/32, 2 anchors each).

    Scores are relative to each photo's best anchor, so every photo gets a few detections (`fires=False`:
    none). With `plant`, the only detection is the planted face (the input is then fixed at 640x640).
    """
    onnx, TensorProto, helper, numpy_helper = _helpers()
    nodes, inits = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    shape = ["N", 3, DET_SIZE, DET_SIZE] if plant else ["N", 3, "H", "W"]
    for width in (1, 4, 10):
        inits.append(numpy_helper.from_array(np.array([-1, width], dtype=np.int64), f"shape_{width}"))
    planted = _plant_maps(plant) if plant else {}
    outs = {"score": [], "bbox": [], "kps": []}
    # colours relative to the photo's mean colour
    nodes.append(helper.make_node("GlobalAveragePool", ["input.1"], ["mean_colour"]))
    for s in STRIDES:
        pooled, feat = f"pool{s}", f"feat{s}"
        nodes.append(helper.make_node("AveragePool", ["input.1"], [f"rawpool{s}"], kernel_shape=[s, s], strides=[s, s]))
        nodes.append(helper.make_node("Sub", [f"rawpool{s}", "mean_colour"], [pooled]))
        wf, bf = rng.normal(0, 1.0, (HIDDEN, 3, 1, 1)), rng.normal(0, 0.3, HIDDEN)
        nodes.append(helper.make_node("Conv", [pooled, const(f"wf{s}", wf), const(f"bf{s}", bf)], [f"pre{s}"]))
        nodes.append(helper.make_node("Relu", [f"pre{s}"], [feat]))
        ws = rng.normal(0, 1.0, (2, HIDDEN, 1, 1))
        nodes.append(helper.make_node("Conv", [feat, const(f"ws{s}", ws)], [f"logit{s}"]))
        # logit' = (logit - max over the photo) * gain + offset: the best anchor always scores sigmoid(offset)
        gain = _score_gain(calib_bgr, wf, bf, ws, s) if calib_bgr is not None else 4.0
        offset = FIRE_OFFSET if (fires and not plant) else -30.0
        nodes.append(helper.make_node("ReduceMax", [f"logit{s}"], [f"max{s}"], axes=[1, 2, 3], keepdims=1))
        nodes.append(helper.make_node("Sub", [f"logit{s}", f"max{s}"], [f"rel{s}"]))
        nodes.append(helper.make_node("Mul", [f"rel{s}", const(f"gain{s}", gain)], [f"scaled{s}"]))
        nodes.append(helper.make_node("Add", [f"scaled{s}", const(f"offset{s}", offset)], [f"final{s}"]))
        score_in = f"final{s}"
        if s in planted:
            nodes.append(helper.make_node("Add", [score_in, const(f"plant_score{s}", planted[s][0])], [f"plogit{s}"]))
            score_in = f"plogit{s}"
        nodes.append(helper.make_node("Sigmoid", [score_in], [f"score{s}"]))
        wb = rng.normal(0, 0.05, (8, HIDDEN, 1, 1))
        bb = np.full(8, np.log(np.expm1(BOX_HALF_STRIDES)))  # softplus(bb) = 3 strides each side
        nodes.append(helper.make_node("Conv", [feat, const(f"wb{s}", wb), const(f"bb{s}", bb)], [f"braw{s}"]))
        nodes.append(helper.make_node("Softplus", [f"braw{s}"], [f"bbox{s}"]))
        wk = rng.normal(0, 0.02, (20, HIDDEN, 1, 1))
        bk = np.tile((KPS_LAYOUT * 2 * BOX_HALF_STRIDES).reshape(-1), 2)
        nodes.append(helper.make_node("Conv", [feat, const(f"wk{s}", wk), const(f"bk{s}", bk)], [f"kps{s}"]))
        for kind, width in (("bbox", 4), ("kps", 10)):
            if s in planted:  # keep the random value everywhere but the planted anchor
                keep, value = planted[s][1 if kind == "bbox" else 2]
                nodes.append(helper.make_node("Mul", [f"{kind}{s}", const(f"keep_{kind}{s}", keep)], [f"m{kind}{s}"]))
                nodes.append(helper.make_node("Add", [f"m{kind}{s}", const(f"plant_{kind}{s}", value)], [f"p{kind}{s}"]))
                src = f"p{kind}{s}"
            else:
                src = f"{kind}{s}"
            _flatten(nodes, helper, src, f"{kind}_{s}", width)
            outs[kind].append(f"{kind}_{s}")
        _flatten(nodes, helper, f"score{s}", f"score_{s}", 1)
        outs["score"].append(f"score_{s}")
    widths = {"score": 1, "bbox": 4, "kps": 10}
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"K{name.split('_')[1]}", widths[kind]])
               for kind in ("score", "bbox", "kps") for name in outs[kind]]
    inputs = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, shape)]
    _save(helper.make_graph(nodes, "tiny_scrfd", inputs, outputs, inits), path)


def _flatten(nodes: list, helper, src: str, dst: str, width: int) -> None:
    nodes.append(helper.make_node("Transpose", [src], [dst + "_t"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Reshape", [dst + "_t", f"shape_{width}"], [dst]))


def _score_gain(bgr: np.ndarray, wf, bf, ws, stride: int) -> float:
    """Gain that lets about FIRE_COUNT[stride] anchors of a calibration photo pass insightface's 0.5 threshold."""
    import cv2

    h, w = bgr.shape[:2]
    scale = DET_SIZE / max(h, w)
    img = np.zeros((DET_SIZE, DET_SIZE, 3), np.float32)
    img[: int(h * scale), : int(w * scale)] = cv2.resize(bgr, (int(w * scale), int(h * scale)))
    x = (img[:, :, ::-1] - 127.5) / 128.0  # blobFromImage(swapRB=True, mean 127.5, scale 1/128)
    g = DET_SIZE // stride
    pooled = x.reshape(g, stride, g, stride, 3).mean(axis=(1, 3)) - x.mean(axis=(0, 1))
    feat = np.maximum(pooled @ wf[:, :, 0, 0].T + bf, 0)
    logits = np.sort((feat @ ws[:, :, 0, 0].T).ravel())[::-1]
    gap = logits[0] - logits[FIRE_COUNT[stride]]
    return float(FIRE_OFFSET / max(gap, 1e-3))


def _plant_maps(plant: PlantedFace) -> dict:
    """Per stride: (score logit add-map, (keep mask, value) for boxes, (keep mask, value) for points)."""
    w, h = plant.image_size
    new_h = DET_SIZE if h / w > 1.0 else int(DET_SIZE * (h / w))  # insightface's letterboxed input height
    det_scale = new_h / h
    box = np.asarray(plant.bbox, np.float64) * det_scale
    kps = np.asarray(plant.kps, np.float64) * det_scale
    side = max(box[2] - box[0], box[3] - box[1])
    stride = min(STRIDES, key=lambda s: abs(side / s - 2 * BOX_HALF_STRIDES))
    g = DET_SIZE // stride
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    col, row = int(np.clip(round(cx / stride), 0, g - 1)), int(np.clip(round(cy / stride), 0, g - 1))
    ax, ay = col * stride, row * stride
    score = np.zeros((1, 2, g, g))
    score[0, 0, row, col] = 60.0  # anchor 0 of this cell: sigmoid(-30 + 60) = 1
    keep_b, val_b = np.ones((1, 8, g, g)), np.zeros((1, 8, g, g))
    keep_k, val_k = np.ones((1, 20, g, g)), np.zeros((1, 20, g, g))
    keep_b[0, :4, row, col] = 0
    val_b[0, :4, row, col] = np.array([ax - box[0], ay - box[1], box[2] - ax, box[3] - ay]) / stride
    keep_k[0, :10, row, col] = 0
    val_k[0, :10, row, col] = ((kps - np.array([ax, ay])) / stride).reshape(-1)
    return {stride: (score, (keep_b, val_b), (keep_k, val_k))}


def write_recognizer(path: Path, rng: np.random.Generator) -> None:
    """ArcFace-shaped recogniser: [N,3,112,112] -> pooled colours -> 512-d embedding (raw norm ~ 25)."""
    onnx, TensorProto, helper, numpy_helper = _helpers()
    w = numpy_helper.from_array(rng.normal(0, 0.1, (588, 512)).astype(np.float32), "fc_w")
    b = numpy_helper.from_array(rng.normal(0, 0.1, 512).astype(np.float32), "fc_b")
    nodes = [
        helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["embedding"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 512])],
        [w, b],
    )
    _save(graph, path)


def write_pooled_head(path: Path, rng: np.random.Generator, size: int, outputs: int, name: str) -> None:
    """Landmark / attribute stand-in: [1,3,size,size] -> pooled 6x6 colours -> `outputs` values in [-1, 1]."""
    onnx, TensorProto, helper, numpy_helper = _helpers()
    k = size // 6
    w = numpy_helper.from_array(rng.normal(0, 0.05, (108, outputs)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(outputs, np.float32), "b")
    nodes = [
        helper.make_node("AveragePool", ["data"], ["pooled"], kernel_shape=[k, k], strides=[k, k], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat", "w", "b"], ["raw"], name="fc"),
        helper.make_node("Tanh", ["raw"], ["out"], name="squash"),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, outputs])],
        [w, b],
    )
    _save(graph, path)
