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

from .. import choices
from ..demo import build_demo_model
from .generate_checks import check_antelopev2_used, check_arguments, check_video_settings
from .output import one_line_warnings, terminate_as_interrupt, write_video_file
from .parallel_args import add_parallel_arguments, built_once, parallel_from_args
from .lora_args import add_lora_argument, apply_loras, check_lora_files
from .speed_args import add_teacache_arguments, teacache_from_args
from .takes_args import add_takes_arguments, takes_from_args

DEFAULT_FACE = Path(__file__).resolve().parents[1] / "assets" / "default_face.png"
DEFAULT_MODEL = Path("models") / "consisid" / "ConsisID-preview"
DEFAULT_PROMPT = (
    "The video shows a person standing in a sunlit park, looking into the camera with a gentle smile. A light breeze "
    "moves the leaves behind them; soft warm light, shallow depth of field, cinematic film still."
)
OFFLOAD = choices.MEMORY_MODE_SHORT
RANDOM_BANNER = (
    "\n" + "!" * 78 + "\n!!  RANDOM WEIGHTS: every network below is randomly initialised. The whole path runs\n"
    "!!  (photo -> identity -> video -> mp4) but the video is NOISE. Download the real weights\n"
    "!!  (--download) and pass --model to make real videos.\n" + "!" * 78 + "\n"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=Path(os.environ.get("CONSISID_MODEL", DEFAULT_MODEL)),
                        help="ConsisID model folder (layout of BestWishYsh/ConsisID-preview); default %(default)s")
    parser.add_argument("--face", type=Path, default=None, help="photo of the person (default: bundled portrait)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="what happens in the video; not empty (default: a person smiling in a sunlit park)")
    parser.add_argument("--negative-prompt", default="", help="what to avoid (default: nothing)")
    parser.add_argument("--out", type=Path, default=Path("out") / "consisid.mp4",
                        help="output video (.mp4/.mkv/.mov); an existing file is kept unless --overwrite "
                             "(default %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="any whole number, taken modulo 2^64 (default 42)")
    parser.add_argument("--steps", type=int, default=50, help="denoising steps (default 50)")
    parser.add_argument("--guidance", type=float, default=6.0,
                        help="classifier-free guidance scale, 0 to 30; 1 or less turns it off (default 6.0)")
    parser.add_argument("--dynamic-cfg", action="store_true", help="use the dynamic CFG schedule")
    parser.add_argument("--frames", type=int, default=None, help="frames (default: the checkpoint's native 49)")
    parser.add_argument("--width", type=int, default=None, help="default: the checkpoint's native width")
    parser.add_argument("--height", type=int, default=None, help="default: the checkpoint's native height")
    parser.add_argument("--fps", type=float, default=8.0,
                        help="frame rate written into the video, above 0 and at most 240 (default 8, as ConsisID)")
    parser.add_argument("--face-selection", default="largest",
                        help=" | ".join(choices.FACE_SELECTIONS) + " | N (0-based, left to right) when the photo has several faces (default largest)")
    parser.add_argument("--offload", choices=sorted(OFFLOAD), default="none", help="memory mode (default none)")
    parser.add_argument("--vae-tiling", choices=choices.VAE_TILING, default="auto",
                        help="decode in tiles to save GPU memory (default auto: on for GPU, off for CPU)")
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    parser.add_argument("--dtype", choices=[choices.AUTO, *choices.PRECISIONS], default="auto",
                        help="default auto = bf16 on GPU, fp32 on CPU")
    parser.add_argument("--noise-device", choices=choices.NOISE_DEVICES, default="cpu",
                        help="cpu (default): the same noise for a seed on every machine; gpu: a generator on the GPU, "
                             "as the original code's torch.Generator('cuda'), to reproduce its seeds there. Either way "
                             "GPU kernels differ between GPU models, so videos can still differ slightly")
    parser.add_argument("--attention", default="sdpa",
                        help="attention backend: sdpa (default), sdpa_math, sdpa_flash, sdpa_efficient, sdpa_cudnn, "
                             "or sageattention / flash_attn when installed")
    parser.add_argument("--onnx-provider", choices=choices.ONNX_PROVIDERS, default=None,
                        help="insightface execution provider (default: cuda when available)")
    parser.add_argument("--antelopev2-dir", type=Path, default=None,
                        help="antelopev2 folder if not in <model>/face_encoder/models/antelopev2")
    parser.add_argument("--download", action="store_true",
                        help="download the weights into --model first (explicit opt-in; resumable)")
    parser.add_argument("--random-weights", action="store_true",
                        help="build a tiny random model in a temporary folder and run the whole path (output is noise)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists (default: refuse)")
    add_parallel_arguments(parser)
    add_teacache_arguments(parser)
    add_lora_argument(parser)
    add_takes_arguments(parser)


@contextmanager
def _stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    print(f"[{name}] ...", flush=True)
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start
    print(f"[{name}] done in {timings[name]:.1f}s", flush=True)


@contextmanager
def _scratch_folder(needed: bool) -> Iterator[str]:
    """A temporary folder only when one is needed (--random-weights), removed even on Ctrl-C or SIGTERM."""
    if not needed:
        yield ""
        return
    with terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="consisid_random_") as tmp:
        yield tmp


def preflight(model: Path, antelopev2_dir: Path | None, lora_files: tuple = ()) -> None:
    """Check every file before loading anything, so one run lists everything that is missing; an explicit
    --antelopev2-dir without the files is an error, not replaced by another copy."""
    from ..engine.files import resolve_model_folder
    from ..errors import ConsisIDError, ModelFilesError
    from ..face.weights import locate_face_weights
    from ..model_status import deep_check

    problems = []
    for check in (lambda: resolve_model_folder(model), lambda: locate_face_weights(model / "face_encoder", antelopev2_dir)):
        try:
            found = check()
        except ModelFilesError as exc:
            problems.append(str(exc))
        else:
            check_antelopev2_used(antelopev2_dir, getattr(found, "antelopev2_dir", None))
    problems += deep_check(model, lora_files, antelopev2_dir)  # 0-byte/cut files, LoRAs that cannot fit
    if problems:
        raise ConsisIDError(
            "the model is not ready:\n" + "\n".join(problems)
            + "\nDownload the weights with --download (explicit opt-in), or try the install with --random-weights."
        )


def run(args: argparse.Namespace) -> int:
    from .. import load_engine
    from ..face import extract_identity, load_face_models
    from ..runtime import resolve_runtime
    from ..video import count_frames

    timings: dict[str, float] = {}
    # one checked setting for the face models and the engine (the nodes resolve theirs the same way)
    runtime = resolve_runtime(device=args.device, dtype=args.dtype, noise_device=args.noise_device,
                              attention=args.attention, memory_mode=OFFLOAD[args.offload],
                              weight_dtype=args.weight_dtype, compile=args.compile)
    device, dtype = str(runtime.device), runtime.dtype_name
    face_path = args.face or DEFAULT_FACE
    check_arguments(args, face_path)  # everything checkable without a model, before anything is loaded
    takes = takes_from_args(args)  # --takes N: checked now; None for a plain run
    loras = check_lora_files(args.lora)
    cache = teacache_from_args(args)
    plan = parallel_from_args(args, device)  # None unless launched by torchrun with a layout
    providers = args.onnx_provider or ("cuda" if device.startswith("cuda") else "cpu")
    tiling = device.startswith("cuda") if args.vae_tiling == "auto" else args.vae_tiling == "on"
    warnings.filterwarnings("ignore", category=FutureWarning, module="insightface")
    one_line_warnings()
    height, width, frames = check_video_settings(Path(args.model), args) if not args.random_weights else (0, 0, None)
    with _scratch_folder(args.random_weights) as tmp:
        if args.random_weights:
            print(RANDOM_BANNER, flush=True)
            with _stage("build random model", timings):
                model = built_once(plan, lambda: build_demo_model(Path(tmp) / "ConsisID-random",
                                                                lambda m: check_video_settings(Path(m), args)))
        else:
            model = args.model
            if args.download:
                from ..download import download_model

                with _stage("download", timings):
                    download_model(model)
        if frames is None:  # the configs came with the download / the random model
            height, width, frames = check_video_settings(Path(model), args)
        preflight(Path(model), args.antelopev2_dir, tuple(p for p, _ in loras))
        if takes is not None:  # scoring models and the reference face, before any model loads
            takes.prepare_scorer(Path(model), face_path)
        print(f"model: {model}\nface photo: {face_path}\ndevice: {device} ({dtype})", flush=True)
        with _stage("load face models", timings):
            faces = load_face_models(Path(model) / "face_encoder", runtime=runtime, onnx_providers=providers,
                                     antelopev2_dir=args.antelopev2_dir)
        with _stage("extract identity", timings):
            identity = extract_identity(faces, face_path, face_selection=args.face_selection)
        del faces
        with _stage("load video model", timings):
            engine = load_engine(model, runtime=runtime)
            engine.parallel = plan
            apply_loras(engine, loras)
        info = engine.info
        if frames is None:  # the configs were unreadable before loading (the checks above refused 0 and negatives)
            height, width = args.height or info.native_height, args.width or info.native_width
            frames = args.frames or info.native_frames
        frames = engine.check_settings(height, width, frames)
        if takes is not None:  # several seeds, the best written (consisid_core/cli/takes_args.py)
            return takes.run_and_write(engine, identity, height, width, frames, tiling, cache, timings)
        with _stage("generate", timings):
            from tqdm.auto import tqdm

            with tqdm(total=args.steps, desc="denoising", unit="step") as bar:
                video = engine.generate(
                    args.prompt, args.negative_prompt, image=identity.face_image, id_cond=identity.id_cond,
                    id_vit_hidden=identity.id_vit_hidden, kps_cond=identity.face_kps if info.is_kps else None,
                    height=height, width=width, num_frames=frames, num_inference_steps=args.steps,
                    guidance_scale=args.guidance, use_dynamic_cfg=args.dynamic_cfg, seed=args.seed,
                    callback=lambda step, total, latents: bar.update(1), vae_tiling=tiling, cache=cache,
                )
            if cache is not None:
                print(cache.summary(), flush=True)
        if plan is not None and not plan.is_writer:
            plan.close()  # waits until rank 0 has written the video
            return 0
        with _stage("write mp4", timings):
            out = write_video_file(video, args.out, fps=args.fps, overwrite=args.overwrite)
        if plan is not None:
            plan.close()
    written = count_frames(out)
    print(f"wrote {out} ({written} frames, {width}x{height}, {args.fps:g} fps)")
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    if args.random_weights:
        print("reminder: random weights were used, so the video is noise.")
    return 0
