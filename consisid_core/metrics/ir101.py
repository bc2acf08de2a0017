"""CurricularFace IR-101 (TFace "IR" backbone) in plain torch, for FaceSim-Cur.

Names and shapes follow `face_encoder/glint360k_curricular_face_r101_backbone.bin`, so the file loads
as is: `input_layer`, 49 `body` units (3/13/30/3 over widths 64/128/256/512, each stage starting with a
stride-2 unit) and `output_layer` (BN, Linear 512*7*7 -> 512, BN without affine). Input: RGB 112x112 in [-1, 1].
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ..errors import ModelFilesError
from .inception import check_state_dict

IR101_FILE = "glint360k_curricular_face_r101_backbone.bin"
IR101_UNITS = (3, 13, 30, 3)
WIDTHS = (64, 128, 256, 512)
INPUT_SIZE = 112
EMBED_DIM = 512


class IRUnit(nn.Module):
    """Pre-activation residual unit: BN-conv3x3-BN-PReLU-conv3x3(stride)-BN plus a shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        if cin == cout:  # a 1x1 max-pool is plain subsampling (identity when stride is 1)
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """TFace IR backbone for 112x112 faces: 512-d embedding (not normalised)."""

    def __init__(self, units: tuple[int, ...] = IR101_UNITS) -> None:
        super().__init__()
        self.units = tuple(units)
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        body, cin = [], 64
        for count, width in zip(self.units, WIDTHS):
            for i in range(count):
                body.append(IRUnit(cin, width, 2 if i == 0 else 1))
                cin = width
        self.body = nn.Sequential(*body)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Identity(),  # dropout slot (eval: identity)
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, EMBED_DIM),
            nn.BatchNorm1d(EMBED_DIM, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.body(self.input_layer(x)))


def units_in(state: dict) -> tuple[int, ...]:
    """Units per stage of an IR state dict, read from its `body.N` keys and their widths."""
    counts = {w: 0 for w in WIDTHS}
    n = 0
    while f"body.{n}.res_layer.1.weight" in state:
        width = int(state[f"body.{n}.res_layer.1.weight"].shape[0])
        if width not in counts:
            break
        counts[width] += 1
        n += 1
    return tuple(counts[w] for w in WIDTHS)


def load_ir_backbone(path: str | os.PathLike, device: str | torch.device = "cpu",
                     units: tuple[int, ...] | None = IR101_UNITS) -> IRBackbone:
    """Load the CurricularFace backbone (weights_only). `units=None` accepts any TFace IR depth (tests)."""
    source = "the face_encoder/ folder of https://huggingface.co/BestWishYsh/ConsisID-preview"
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFilesError(f"Cannot read the CurricularFace weights {path}: {exc}. Get {IR101_FILE} again from {source}.") from exc
    if isinstance(state, dict) and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    model = IRBackbone(units if units is not None else units_in(state) if isinstance(state, dict) else IR101_UNITS)
    check_state_dict(model, state, path, "CurricularFace IR-101", source)
    model.load_state_dict(state, strict=False)
    return model.eval().requires_grad_(False).to(device)
