"""A random `parsing_parsenet.pth` so facexlib's FaceRestoreHelper loads offline (the reference chain only).

Our pipeline never reads it; the face parity tests and bench/bench_face.py write it next to the face models
so the reference chain loads without a download."""

from __future__ import annotations

from pathlib import Path

import torch

from consisid_core import catalog

PARSENET_FILE = "parsing_parsenet.pth"


def write_parsenet(model_dir: str | Path, seed: int = 0) -> Path:
    """Write face_encoder/parsing_parsenet.pth (loaded by the reference, never used by either pipeline)."""
    path = Path(model_dir) / catalog.FACE_ENCODER_DIR / PARSENET_FILE
    torch.save(parsenet_state(torch.Generator().manual_seed(seed)), path)
    return path


def parsenet_state(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random weights with the keys/shapes of facexlib's ParseNet(512, 512, parsing_ch=19) (loaded, never used)."""
    state: dict[str, torch.Tensor] = {}

    def conv(prefix: str, cin: int, cout: int, bn: bool) -> None:
        state[f"{prefix}.conv2d.weight"] = 0.01 * torch.randn(cout, cin, 3, 3, generator=gen)
        if bn:
            for k, v in (("weight", torch.ones(cout)), ("bias", torch.zeros(cout)), ("running_mean", torch.zeros(cout)),
                         ("running_var", torch.ones(cout)), ("num_batches_tracked", torch.tensor(0))):
                state[f"{prefix}.norm.norm.{k}"] = v
        else:
            state[f"{prefix}.conv2d.bias"] = torch.zeros(cout)

    def block(prefix: str, cin: int, cout: int, shortcut: bool) -> None:
        if shortcut:
            conv(f"{prefix}.shortcut_func", cin, cout, bn=False)
        conv(f"{prefix}.conv1", cin, cout, bn=True)
        conv(f"{prefix}.conv2", cout, cout, bn=True)

    clip = lambda c: max(32, min(c, 256))  # noqa: E731
    conv("encoder.0", 3, 64, bn=False)
    ch = 64
    for i in range(4):
        block(f"encoder.{i + 1}", clip(ch), clip(ch * 2), True)
        ch *= 2
    for i in range(10):
        block(f"body.{i}", clip(ch), clip(ch), False)
    for i in range(4):
        block(f"decoder.{i}", clip(ch), clip(ch // 2), True)
        ch //= 2
    conv("out_img_conv", clip(ch), 3, bn=False)
    conv("out_mask_conv", clip(ch), 19, bn=False)
    return state
