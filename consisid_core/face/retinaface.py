"""RetinaFace-ResNet50 in plain torch: loads `detection_Resnet50_Final.pth` as is and detects like facexlib.

Parameter names follow the official file (`body.*` = ResNet50 up to layer4, `fpn.*`, `ssh1..3.*`,
`ClassHead/BboxHead/LandmarkHead.{0,1,2}.conv1x1.*`). Every operation mirrors the reference order and
memory layout so scores, boxes and landmarks are bit-identical on the same torch build.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .boxes import nms
from .detection import DetectedFace
from .state_dict import build_from_state, load_torch_state_dict

CONF_THRESHOLD = 0.97  # facexlib FaceRestoreHelper.get_face_landmarks_5
NMS_THRESHOLD = 0.4
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
BGR_MEAN = (104.0, 117.0, 123.0)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    )


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)
        return F.relu(out)


class _ResNet50Body(nn.Module):
    """ResNet50 stem + layer1..4; returns the layer2/3/4 feature maps (strides 8, 16, 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for index, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
            layer = []
            for b in range(blocks):
                layer.append(_Bottleneck(cin, width, stride if b == 0 else 1))
                cin = width * 4
            setattr(self, f"layer{index}", nn.Sequential(*layer))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]


def _relu0(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.0)  # the reference's LeakyReLU(negative_slope=0)


class _FPN(nn.Module):
    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        self.output1 = _conv_bn(512, channels, 1)
        self.output2 = _conv_bn(1024, channels, 1)
        self.output3 = _conv_bn(2048, channels, 1)
        self.merge1 = _conv_bn(channels, channels, 3)
        self.merge2 = _conv_bn(channels, channels, 3)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = (_relu0(m(f)) for m, f in zip((self.output1, self.output2, self.output3), feats))
        o2 = _relu0(self.merge2(o2 + F.interpolate(o3, size=[o2.size(2), o2.size(3)], mode="nearest")))
        o1 = _relu0(self.merge1(o1 + F.interpolate(o2, size=[o1.size(2), o1.size(3)], mode="nearest")))
        return [o1, o2, o3]


class _SSH(nn.Module):
    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        self.conv3X3 = _conv_bn(channels, channels // 2, 3)
        self.conv5X5_1 = _conv_bn(channels, channels // 4, 3)
        self.conv5X5_2 = _conv_bn(channels // 4, channels // 4, 3)
        self.conv7X7_2 = _conv_bn(channels // 4, channels // 4, 3)
        self.conv7x7_3 = _conv_bn(channels // 4, channels // 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5_1 = _relu0(self.conv5X5_1(x))
        c7_2 = _relu0(self.conv7X7_2(c5_1))
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(c5_1), self.conv7x7_3(c7_2)], dim=1))


class _Head(nn.Module):
    def __init__(self, channels: int, values: int, anchors: int = 2) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(channels, anchors * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.values)


class RetinaFaceR50(nn.Module):
    """The network: returns (box offsets, class probabilities, landmark offsets) per prior."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _ResNet50Body()
        self.fpn = _FPN()
        self.ssh1, self.ssh2, self.ssh3 = _SSH(), _SSH(), _SSH()
        self.ClassHead = nn.ModuleList(_Head(256, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(256, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(256, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fpn = self.fpn(self.body(x))
        feats = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], dim=1)
        conf = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], dim=1)
        ldm = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], dim=1)
        return loc, F.softmax(conf, dim=-1), ldm


@lru_cache(maxsize=8)
def priors(height: int, width: int) -> torch.Tensor:
    """Anchor boxes (cx, cy, w, h), relative to the image, in the reference's row/col/size order."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        rows, cols = -(-height // step), -(-width // step)
        cy = (np.arange(rows, dtype=np.float64) + 0.5) * step / height
        cx = (np.arange(cols, dtype=np.float64) + 0.5) * step / width
        grid = np.empty((rows, cols, len(sizes), 4), dtype=np.float64)
        grid[..., 0] = cx[None, :, None]
        grid[..., 1] = cy[:, None, None]
        for k, size in enumerate(sizes):
            grid[:, :, k, 2] = size / width
            grid[:, :, k, 3] = size / height
        out.append(grid.reshape(-1, 4))
    return torch.from_numpy(np.concatenate(out).astype(np.float32))


def decode(loc: torch.Tensor, pri: torch.Tensor, ldm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prior-relative offsets -> x1,y1,x2,y2 boxes and 5 landmarks (relative units), reference arithmetic."""
    v0, v1 = VARIANCES
    boxes = torch.cat((pri[:, :2] + loc[:, :2] * v0 * pri[:, 2:], pri[:, 2:] * torch.exp(loc[:, 2:] * v1)), 1)
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    points = torch.cat([pri[:, :2] + ldm[:, 2 * i : 2 * i + 2] * v0 * pri[:, 2:] for i in range(5)], dim=1)
    return boxes, points


class RetinaFaceDetector:
    """facexlib's `detect_faces(img, 0.97)` at the original image size, as a FaceDetector."""

    name = "retinaface"

    def __init__(self, net: RetinaFaceR50, device: torch.device | str = "cpu") -> None:
        self.net = net.eval()
        self.device = torch.device(device)
        self.mean = torch.tensor([[[[BGR_MEAN[0]]], [[BGR_MEAN[1]]], [[BGR_MEAN[2]]]]], device=self.device)

    def raw_detect(self, image_bgr: np.ndarray, conf_threshold: float = CONF_THRESHOLD) -> np.ndarray:
        """[N, 15] float32 rows (x1, y1, x2, y2, score, 5 x/y landmarks) after threshold and NMS, best first."""
        height, width = image_bgr.shape[:2]
        # same construction as the reference (a transposed numpy view) so convolutions see the same layout
        x = torch.from_numpy(image_bgr.astype(np.float32).transpose(2, 0, 1)).unsqueeze(0).to(self.device) - self.mean
        with torch.inference_mode():
            loc, conf, ldm = self.net(x)
            boxes, points = decode(loc.squeeze(0), priors(height, width).to(self.device), ldm.squeeze(0))
            scale = torch.tensor([width, height] * 2, dtype=torch.float32, device=self.device)
            scale1 = torch.tensor([width, height] * 5, dtype=torch.float32, device=self.device)
            boxes = (boxes * scale).cpu().numpy()
            points = (points * scale1).cpu().numpy()
            scores = conf.squeeze(0).cpu().numpy()[:, 1]
        keep = np.where(scores > conf_threshold)[0]
        boxes, points, scores = boxes[keep], points[keep], scores[keep]
        order = scores.argsort()[::-1]  # the reference pre-sorts with numpy; kept for identical tie order
        boxes, points, scores = boxes[order], points[order], scores[order]
        dets = np.hstack((boxes, scores[:, None])).astype(np.float32, copy=False)
        kept = nms(dets[:, :4], dets[:, 4], NMS_THRESHOLD)
        return np.concatenate((dets[kept], points[kept]), axis=1)

    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        return [
            DetectedFace(bbox=row[:4].copy(), kps=row[5:15].reshape(5, 2).copy(), score=float(row[4]), source=self.name)
            for row in self.raw_detect(image_bgr)
        ]


def load_retinaface(path: str | os.PathLike, device: torch.device | str = "cpu") -> RetinaFaceDetector:
    """Build the detector from the official weight file (fp32, like the reference)."""
    state = load_torch_state_dict(path)
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    return RetinaFaceDetector(build_from_state(RetinaFaceR50, state, device), device)

