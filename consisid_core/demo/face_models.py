"""Write a complete `face_encoder/` folder in the official layout with random weights.

- `detection_Resnet50_Final.pth`: full-size RetinaFace-ResNet50 (official/facexlib keys). BatchNorm
  statistics are calibrated on the bundled default photo so activations stay in range, and the class
  head bias makes a small fraction of anchors pass the 0.97 threshold on real photos.
- `parsing_bisenet.pth`: full-size BiSeNet (including the two auxiliary heads the reference loads).
- `EVA02_CLIP_L_336_psz14_s6B.pt`: fp16 whole-CLIP-style state dict (`visual.*` + a few text keys);
  `eva="full"` is the real size (1024 wide, 24 blocks, 336 px, 577 tokens), `eva="tiny"` is 16 wide.
- `models/antelopev2/*.onnx`: tiny insightface-routable stand-ins (see face_onnx).

With `plant=DEFAULT_FACE` (the default for `face_models_for_default_photo`) the detector reports the real
face of the default photo and RetinaFace stays silent, so the pipeline aligns that face with its true
points: random weights then give a plausible, deterministic crop. Outputs of the networks are noise.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from .. import catalog
from ..face.bisenet import BiSeNet, _Output
from ..face.eva_clip import EVA_L_336, EVA_TINY, EVAConfig, EVAVisionTower, rope_tables, to_official
from ..face.retinaface import BGR_MEAN, RetinaFaceR50
from ..face.weights import GLINTR100_FILE, SCRFD_FILE
from .face_onnx import DEFAULT_FACE, PlantedFace, write_detector, write_pooled_head, write_recognizer

DEFAULT_PHOTO = Path(__file__).resolve().parents[1] / "assets" / "default_face.png"
RETINA_FIRE_FRACTION = 0.0005 # share of anchors above the 0.97 threshold on the calibration photo


def default_photo_bgr() -> np.ndarray:
    """The bundled default portrait (skimage's astronaut) as BGR uint8."""
    return np.ascontiguousarray(np.asarray(Image.open(DEFAULT_PHOTO).convert("RGB"))[:, :, ::-1])


def write_face_encoder(
    model_dir: str | Path,
    *,
    eva: str | EVAConfig = "tiny",
    seed: int = 0,
    plant: PlantedFace | None = None,
    retinaface_fires: bool | None = None,
    antelopev2_fires: bool = True,
    background_fraction: float | None = None,
    antelopev2_full_pack: bool = True,
) -> Path:
    """Write `<model_dir>/face_encoder/` and return its path.

    eva: "tiny", "full" or an EVAConfig. plant: a face the detector always reports (e.g. DEFAULT_FACE).
    retinaface_fires: whether RetinaFace passes its 0.97 threshold anywhere (default: not when planting).
    antelopev2_fires: False makes the antelopev2 detector find nothing (the reference's fallback path).
    background_fraction: share of crop pixels BiSeNet calls background (default 0.35, 0 when planting).
    """
    face_dir = Path(model_dir) / catalog.FACE_ENCODER_DIR
    ante_dir = face_dir.joinpath(*catalog.ANTELOPEV2_SUBDIR)
    ante_dir.mkdir(parents=True, exist_ok=True)
    fires = (plant is None) if retinaface_fires is None else retinaface_fires
    bg_fraction = (0.0 if plant else 0.35) if background_fraction is None else background_fraction
    calib = default_photo_bgr()
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)

    torch.save(retinaface_state(gen, calib, fires), face_dir / catalog.RETINAFACE_FILE)
    torch.save(bisenet_state(gen, calib, bg_fraction), face_dir / catalog.BISENET_FILE)
    cfg = {"tiny": EVA_TINY, "full": EVA_L_336}[eva] if isinstance(eva, str) else eva
    torch.save(eva_clip_state(gen, cfg), face_dir / catalog.EVA_CLIP_FILE)
    write_detector(ante_dir / SCRFD_FILE, rng, calib_bgr=calib, plant=plant, fires=antelopev2_fires)
    write_recognizer(ante_dir / GLINTR100_FILE, rng)
    if antelopev2_full_pack:  # routed and run by insightface's FaceAnalysis, unused by ConsisID
        write_pooled_head(ante_dir / "2d106det.onnx", rng, 192, 212, "tiny_2d106")
        write_pooled_head(ante_dir / "1k3d68.onnx", rng, 192, 3309, "tiny_3d68")
        write_pooled_head(ante_dir / "genderage.onnx", rng, 96, 3, "tiny_genderage")
    return face_dir


def face_models_for_default_photo(model_dir: str | Path, *, eva: str | EVAConfig = "full", seed: int = 0) -> Path:
    """face_encoder/ whose random models find the real face of the bundled default photo (for --random-weights)."""
    return write_face_encoder(model_dir, eva=eva, seed=seed, plant=DEFAULT_FACE)


# --------------------------------------------------------------------------- RetinaFace


def retinaface_state(gen: torch.Generator, calib_bgr: np.ndarray, fires: bool) -> dict[str, torch.Tensor]:
    """Random RetinaFace weights with BatchNorm calibrated on `calib_bgr` and a biased class head."""
    net = RetinaFaceR50()
    _init_convs(net, gen)
    small = calib_bgr[::2, ::2]  # half size keeps the calibration pass cheap
    x = torch.from_numpy(np.ascontiguousarray(small.astype(np.float32).transpose(2, 0, 1)))[None]
    x = x - torch.tensor(BGR_MEAN).view(1, 3, 1, 1)
    _calibrate_batchnorm(net, x)
    for heads, std in ((net.BboxHead, 0.02), (net.LandmarkHead, 0.01), (net.ClassHead, 0.05)):
        for head in heads:
            head.conv1x1.weight.data = torch.randn(head.conv1x1.weight.shape, generator=gen) * std
            head.conv1x1.bias.data.zero_()
    for head in net.LandmarkHead:  # a face-like 5-point layout around each prior (units of 0.1 x prior size)
        layout = torch.tensor([[-0.18, -0.1], [0.18, -0.1], [0.0, 0.08], [-0.15, 0.27], [0.15, 0.27]]) / 0.1
        head.conv1x1.bias.data = layout.reshape(-1).repeat(2)
    threshold = math.log(0.97 / 0.03)
    gaps = []
    with torch.no_grad():
        for size in (256, 112):  # a mid-size photo and a tiny, face-filling one (like insightface's 112 px sample)
            small = cv2.resize(calib_bgr, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
            xs = torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)))[None] - torch.tensor(BGR_MEAN).view(1, 3, 1, 1)
            _, conf, _ = net.eval()(xs)
            gaps.append(torch.log(conf[0, :, 1]) - torch.log(conf[0, :, 0]))
    # fire on RETINA_FIRE_FRACTION of a mid-size photo's anchors and on a few anchors of a tiny photo
    levels = _level_slices(256)
    target = torch.quantile(gaps[0][levels[0]], 1.0 - RETINA_FIRE_FRACTION).item()
    top = max(g.max().item() for g in gaps)
    for level, head in enumerate(net.ClassHead):
        if not fires:
            shift = -20.0 - top
        elif level == 2:  # the coarsest level (priors 256/512) fires nearly everywhere: every photo gets faces
            shift = threshold + 1.5 - torch.median(gaps[1][_level_slices(112)[2]]).item()
        else:
            shift = threshold + 0.5 - target
        head.conv1x1.bias.data = torch.tensor([0.0, shift, 0.0, shift])
    return net.state_dict()


def _level_slices(size: int) -> list[slice]:
    """Which prior indices belong to each pyramid level for a size x size image."""
    counts = [(-(-size // step)) ** 2 * 2 for step in (8, 16, 32)]
    starts = np.cumsum([0] + counts)
    return [slice(int(starts[i]), int(starts[i + 1])) for i in range(3)]


def _init_convs(net: nn.Module, gen: torch.Generator) -> None:
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            m.weight.data = torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_out)
            if m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data = 0.75 + 0.5 * torch.rand(m.num_features, generator=gen)
            m.bias.data = 0.1 * torch.randn(m.num_features, generator=gen)


def _calibrate_batchnorm(net: nn.Module, *inputs: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of one forward pass (data-dependent init)."""
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(*inputs)
    for bn in bns:
        bn.momentum = 0.1
        bn.num_batches_tracked.zero_()
    net.eval()


# --------------------------------------------------------------------------- BiSeNet


class _BiSeNetFile(BiSeNet):
    """BiSeNet plus the two auxiliary heads the official file (and facexlib) carry."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_out16 = _Output(128, 64, 19)
        self.conv_out32 = _Output(128, 64, 19)


def bisenet_state(gen: torch.Generator, calib_bgr: np.ndarray, background_fraction: float) -> dict[str, torch.Tensor]:
    """Random BiSeNet whose argmax labels about `background_fraction` of a face crop as background."""
    net = _BiSeNetFile()
    _init_convs(net, gen)
    rgb = torch.from_numpy(np.ascontiguousarray(calib_bgr[:, :, ::-1])).permute(2, 0, 1).float()[None] / 255
    crops = [rgb[..., 96:416, 96:416], rgb[..., 40:360, 60:380], rgb[..., 150:470, 100:420], rgb[..., 96:416, 96:416].flip(-1)]
    # a small batch: the 1x1 pooled attention branches need more than one value per channel to calibrate
    rgb = torch.cat([torch.nn.functional.interpolate(c, size=(256, 256), mode="bilinear", align_corners=False) for c in crops])
    x = (rgb - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    _calibrate_batchnorm(net, x)
    # channel 0 of the last ConvBNReLU becomes a constant 1 (BN weight 0, bias 1): its column is a per-class bias
    bn = net.conv_out.conv.bn
    bn.weight.data[0], bn.bias.data[0] = 0.0, 1.0
    out_w = net.conv_out.conv_out.weight.data
    out_w.normal_(0.0, 0.05, generator=gen)
    out_w[:, 0] = 0.0
    if background_fraction <= 0:  # skin (label 1) wins everywhere by far: the whole crop is kept
        out_w[1, 0, 0, 0] = 100.0
    else:  # background (label 0) wins on about `background_fraction` of the pixels
        with torch.no_grad():
            logits = net(x[:1])
        gap = (logits[:, 1:].max(dim=1).values - logits[:, 0]).flatten()
        out_w[0, 0, 0, 0] = torch.quantile(gap[:: max(1, gap.numel() // 100000)], background_fraction).item()
    return net.state_dict()


# --------------------------------------------------------------------------- EVA-CLIP


def eva_clip_state(gen: torch.Generator, cfg: EVAConfig) -> dict[str, torch.Tensor]:
    """fp16 whole-CLIP-style state dict: `visual.*` (random) plus a few `text`/`logit_scale` keys."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in EVAVisionTower(cfg).state_dict().items()}
    ours = {}
    for name, shape in shapes.items():
        if name.endswith(("norm1.weight", "norm2.weight", "ln.weight", "norm.weight")):
            value = 1.0 + 0.05 * torch.randn(shape, generator=gen)
        else:
            value = 0.02 * torch.randn(shape, generator=gen)
        if name.endswith(("proj.weight", "w3.weight")) and name.startswith("blocks."):
            value /= math.sqrt(2.0 * (int(name.split(".")[1]) + 1))  # EVA's depth-scaled init
        ours[name] = value
    visual = to_official(ours, cfg)
    rope_cos, rope_sin = rope_tables(cfg)
    visual["rope.freqs_cos"], visual["rope.freqs_sin"] = rope_cos[1:], rope_sin[1:]
    for i in range(cfg.depth):  # the rope module is shared by every block, so the official file repeats it
        visual[f"blocks.{i}.attn.rope.freqs_cos"], visual[f"blocks.{i}.attn.rope.freqs_sin"] = rope_cos[1:], rope_sin[1:]
    state = {f"visual.{k}": v.to(torch.float16).contiguous() for k, v in visual.items()}
    state["logit_scale"] = torch.tensor(math.log(1 / 0.07), dtype=torch.float16)
    state["text.positional_embedding"] = (0.01 * torch.randn(77, 768, generator=gen)).to(torch.float16)
    return state
