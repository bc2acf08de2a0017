"""`prepare-data`: a folder of clips -> a training dataset (cached latents, text, identity, masks + manifest)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import choices


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="ConsisID model folder (its VAE, T5, face_encoder/)")
    parser.add_argument("--clips", type=Path, required=True,
                        help="folder of clips: mp4/webm/mov files or sub-folders of frames, one person each")
    parser.add_argument("--out", type=Path, required=True,
                        help="dataset folder: new or empty (created), or one made by prepare-data (re-run to resume)")
    parser.add_argument("--captions", type=Path, default=None,
                        help="a CSV (clip,caption) or a folder of NAME.txt; default: NAME.txt beside each clip")
    parser.add_argument("--stride", type=int, default=3, help="take every Nth frame (default 3, as the paper)")
    parser.add_argument("--cross-faces", type=int, default=2,
                        help="reference faces kept from outside the window for the cross-face loss (default 2)")
    parser.add_argument("--mask", choices=["parse", "box"], default="parse",
                        help="face mask: BiSeNet face region with a box fallback (default), or the face box")
    parser.add_argument("--min-face-fraction", type=float, default=0.5,
                        help="skip clips with a face in fewer of the sampled frames than this (default 0.5)")
    parser.add_argument("--face-selection", default="largest",
                        help="largest | central | N (0-based, left to right): which person to follow (default largest)")
    parser.add_argument("--retry-skipped", action="store_true", help="try again the clips an earlier run skipped")
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    parser.add_argument("--onnx-provider", choices=choices.ONNX_PROVIDERS, default=None,
                        help="insightface execution provider (default: cuda when the device is a GPU, else cpu)")
    parser.add_argument("--antelopev2-dir", type=Path, default=None,
                        help="antelopev2 folder if not in <model>/face_encoder/models/antelopev2 (default: that one)")


def check_arguments(args: argparse.Namespace) -> list:
    """Everything checkable before a model loads: numbers, face selection, clips, captions and --out.
    Returns the clip candidates."""
    from .. import validate
    from ..face.selection import check_selection
    from ..training.captions import read_caption_table
    from ..training.prepare import clip_sources
    from ..output_paths import check_not_in_models

    validate.check_whole(args.stride, "--stride", 1, hint="take every Nth frame; the paper uses 3")
    validate.check_whole(args.cross_faces, "--cross-faces", 0)
    validate.check_number(args.min_face_fraction, "--min-face-fraction", 0.0, 1.0, low_open=True)
    args.face_selection = check_selection(args.face_selection)
    sources = clip_sources(args.clips)
    read_caption_table(args.captions)  # a --captions CSV that is not UTF-8 is refused here, naming line and byte
    check_dataset_folder(args.out, args.model)
    check_not_in_models(args.out, [args.clips], "--out", what="--clips folder", why="the clips are only read")
    return sources


def check_dataset_folder(out: Path, model: Path) -> None:
    """--out: a new or empty folder, or a dataset made by prepare-data (resumed); never the model folder."""
    from ..errors import ConsisIDError
    from ..training.manifest import MANIFEST, SETTINGS
    from ..output_paths import check_output_folder

    check_output_folder(out, option="--out", purpose="the dataset", models=[model])
    out = Path(out).expanduser()
    if out.is_dir() and any(out.iterdir()) and not ((out / MANIFEST).is_file() or (out / SETTINGS).is_file()):
        raise ConsisIDError(f"--out {out} already holds other files and is not a dataset made by prepare-data; "
                            "give a new or empty folder (re-running on a dataset folder resumes it)")


def run(args: argparse.Namespace) -> int:
    check_arguments(args)  # before torch and the models load
    import torch

    from ..face import load_face_models
    from ..runtime import resolve_device
    from ..training.components import load_text, load_vae, model_files, model_info
    from ..training.prepare import Components, PrepareOptions, prepare_dataset

    device = str(resolve_device(args.device))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    files = model_files(args.model)
    providers = args.onnx_provider or ("cuda" if device.startswith("cuda") else "cpu")
    faces = load_face_models(Path(args.model) / "face_encoder", device=device, onnx_providers=providers,
                             antelopev2_dir=args.antelopev2_dir)
    tokenizer, text_encoder = load_text(files, dtype)
    components = Components(vae=load_vae(files, dtype).to(device), tokenizer=tokenizer,
                            text_encoder=text_encoder.to(device), faces=faces, info=model_info(files),
                            device=torch.device(device), dtype=dtype)
    options = PrepareOptions(stride=args.stride, min_face_fraction=args.min_face_fraction, cross_faces=args.cross_faces,
                             mask=args.mask, face_selection=args.face_selection, retry_skipped=args.retry_skipped)
    report = prepare_dataset(components, args.clips, args.out, args.captions, options, model_id=str(Path(args.model).name))
    print("\n".join(report.lines()))
    print(f"dataset: {args.out} (manifest.jsonl, report.txt)")
    return 0 if report.ok or report.already else 1
