"""`generate`: face photo + prompt -> mp4, through the face pipeline and the engine (the pack's main job)."""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DEFAULT_FACE = Path(__file__).resolve().parents[1] / "assets" / "default_face.png"
DEFAULT_MODEL = Path("models") / "consisid" / "ConsisID-preview"
DEFAULT_PROMPT = (
    "The video shows a person standing in a sunlit park, looking into the camera with a gentle smile. A light breeze "
    "moves the leaves behind them; soft warm light, shallow depth of field, cinematic film still."
)
OFFLOAD = {"none": "none", "model": "model_offload", "sequential": "sequential_offload"}
RANDOM_BANNER = (
    "\n" + "!" * 78 + "\n!!  RANDOM WEIGHTS: every network below is randomly initialised. The whole path runs\n"
    "!!  (photo -> identity -> video -> mp4) but the video is NOISE. Download the real weights\n"
    "!!  (--download) and pass --model to make real videos.\n" + "!" * 78 + "\n"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=Path(os.environ.get("CONSISID_MODEL", DEFAULT_MODEL)),
                        help="ConsisID model folder (layout of BestWishYsh/ConsisID-preview); default %(default)s")
    parser.add_argument("--face", type=Path, default=None, help="photo of the person (default: bundled portrait)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="what happens in the video")
    parser.add_argument("--negative-prompt", default="", help="what to avoid")
    parser.add_argument("--out", type=Path, default=Path("out") / "consisid.mp4", help="output mp4 path")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--steps", type=int, default=50, help="denoising steps (default 50)")
    parser.add_argument("--guidance", type=float, default=6.0, help="classifier-free guidance scale (default 6.0)")
    parser.add_argument("--dynamic-cfg", action="store_true", help="use the dynamic CFG schedule")
    parser.add_argument("--frames", type=int, default=None, help="frames (default: the checkpoint's native 49)")
    parser.add_argument("--width", type=int, default=None, help="default: the checkpoint's native width")
    parser.add_argument("--height", type=int, default=None, help="default: the checkpoint's native height")
    parser.add_argument("--fps", type=float, default=8.0)
    parser.add_argument("--face-selection", default="largest",
                        help="largest | central | reference | N (0-based, left to right) when the photo has several faces")
    parser.add_argument("--offload", choices=sorted(OFFLOAD), default="none", help="memory mode")
    parser.add_argument("--vae-tiling", choices=["auto", "on", "off"], default="auto",
                        help="decode in tiles to save GPU memory (auto: on for GPU, off for CPU)")
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    parser.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                        help="auto = bf16 on GPU, fp32 on CPU")
    parser.add_argument("--onnx-provider", choices=["cpu", "cuda"], default=None,
                        help="insightface execution provider (default: cuda when available)")
    parser.add_argument("--antelopev2-dir", type=Path, default=None,
                        help="antelopev2 folder if not in <model>/face_encoder/models/antelopev2")
    parser.add_argument("--download", action="store_true",
                        help="download the weights into --model first (explicit opt-in; resumable)")
    parser.add_argument("--random-weights", action="store_true",
                        help="build a tiny random model in a temporary folder and run the whole path (output is noise)")


@contextmanager
def _stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    print(f"[{name}] ...", flush=True)
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start
    print(f"[{name}] done in {timings[name]:.1f}s", flush=True)


def _face_selection(value: str):
    return int(value) if value.lstrip("-").isdigit() else value


def _random_model(folder: Path) -> Path:
    """Tiny DiT/VAE/T5 with the real face-feature sizes + full-size random face networks, tiny antelopev2."""
    from ..testing.tiny_face_models import face_models_for_default_photo
    from ..testing.tiny_models import TinySpec, write_tiny_model

    model = write_tiny_model(folder, TinySpec.real_face_dims(height=256, width=384, frames=17, text_len=226))
    face_models_for_default_photo(model, eva="full")
    return model


def preflight(model: Path, antelopev2_dir: Path | None) -> None:
    """Check every file before loading anything, so one run lists everything that is missing."""
    from ..engine.files import resolve_model_folder
    from ..errors import ConsisIDError, ModelFilesError
    from ..face.weights import locate_face_weights

    problems = []
    for check in (lambda: resolve_model_folder(model), lambda: locate_face_weights(model / "face_encoder", antelopev2_dir)):
        try:
            check()
        except ModelFilesError as exc:
            problems.append(str(exc))
    if problems:
        raise ConsisIDError(
            "the model is not ready:\n" + "\n".join(problems)
            + "\nDownload the weights with --download (explicit opt-in), or try the install with --random-weights."
        )


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import load_engine
    from ..face import extract_identity, load_face_models
    from ..video import count_frames, write_mp4

    timings: dict[str, float] = {}
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = args.dtype if args.dtype != "auto" else ("bf16" if device.startswith("cuda") else "fp32")
    face_path = args.face or DEFAULT_FACE
    providers = args.onnx_provider or ("cuda" if device.startswith("cuda") else "cpu")
    tiling = device.startswith("cuda") if args.vae_tiling == "auto" else args.vae_tiling == "on"
    warnings.filterwarnings("ignore", category=FutureWarning, module="insightface")
    with tempfile.TemporaryDirectory(prefix="consisid_random_") as tmp:
        if args.random_weights:
            print(RANDOM_BANNER, flush=True)
            with _stage("build random model", timings):
                model = _random_model(Path(tmp) / "ConsisID-random")
        else:
            model = args.model
            if args.download:
                from ..download import download_model

                with _stage("download", timings):
                    download_model(model)
        preflight(Path(model), args.antelopev2_dir)
        print(f"model: {model}\nface photo: {face_path}\ndevice: {device} ({dtype})", flush=True)
        with _stage("load face models", timings):
            faces = load_face_models(Path(model) / "face_encoder", device=device, onnx_providers=providers,
                                     antelopev2_dir=args.antelopev2_dir)
        with _stage("extract identity", timings):
            identity = extract_identity(faces, face_path, face_selection=_face_selection(args.face_selection))
        del faces
        with _stage("load video model", timings):
            engine = load_engine(model, device=device, dtype=dtype, memory_mode=OFFLOAD[args.offload])
        info = engine.info
        height, width = args.height or info.native_height, args.width or info.native_width
        frames = engine.check_settings(height, width, args.frames or info.native_frames)
        with _stage("generate", timings):
            from tqdm.auto import tqdm

            with tqdm(total=args.steps, desc="denoising", unit="step") as bar:
                video = engine.generate(
                    args.prompt, args.negative_prompt, image=identity.face_image, id_cond=identity.id_cond,
                    id_vit_hidden=identity.id_vit_hidden, kps_cond=identity.face_kps if info.is_kps else None,
                    height=height, width=width, num_frames=frames, num_inference_steps=args.steps,
                    guidance_scale=args.guidance, use_dynamic_cfg=args.dynamic_cfg, seed=args.seed,
                    callback=lambda step, total, latents: bar.update(1), vae_tiling=tiling,
                )
        with _stage("write mp4", timings):
            out = write_mp4(video, args.out, fps=args.fps)
    written = count_frames(out)
    print(f"wrote {out} ({written} frames, {width}x{height}, {args.fps:g} fps)")
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    if args.random_weights:
        print("reminder: random weights were used, so the video is noise.")
    return 0
