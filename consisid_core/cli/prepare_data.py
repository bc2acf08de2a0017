"""`prepare-data`: a folder of clips -> a training dataset (cached latents, text, identity, masks + manifest)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import choices


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="ConsisID model folder (its VAE, T5, face_encoder/)")
    parser.add_argument("--clips", type=Path, required=True,
                        help="folder of clips: mp4/webm/mov files or sub-folders of frames, one person each")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (created; re-run to resume)")
    parser.add_argument("--captions", type=Path, default=None,
                        help="a CSV (clip,caption) or a folder of NAME.txt; default: NAME.txt beside each clip")
    parser.add_argument("--stride", type=int, default=3, help="take every Nth frame (default 3, as the paper)")
    parser.add_argument("--cross-faces", type=int, default=2,
                        help="reference faces kept from outside the window for the cross-face loss (default 2)")
    parser.add_argument("--mask", choices=["parse", "box"], default="parse",
                        help="face mask: BiSeNet face region with a box fallback (default), or the face box")
    parser.add_argument("--min-face-fraction", type=float, default=0.5,
                        help="skip clips with a face in fewer of the sampled frames than this (default 0.5)")
    parser.add_argument("--face-selection", default="largest", help="largest | central | N: which person to follow")
    parser.add_argument("--retry-skipped", action="store_true", help="try again the clips an earlier run skipped")
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    parser.add_argument("--onnx-provider", choices=choices.ONNX_PROVIDERS, default=None)
    parser.add_argument("--antelopev2-dir", type=Path, default=None)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import UnsupportedInputError
    from ..face import load_face_models
    from ..training.components import load_text, load_vae, model_files, model_info
    from ..training.prepare import Components, PrepareOptions, prepare_dataset

    if args.stride < 1 or args.cross_faces < 0 or not 0.0 < args.min_face_fraction <= 1.0:
        raise UnsupportedInputError("--stride must be >= 1, --cross-faces >= 0 and --min-face-fraction in (0, 1]")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    files = model_files(args.model)
    providers = args.onnx_provider or ("cuda" if device.startswith("cuda") else "cpu")
    faces = load_face_models(Path(args.model) / "face_encoder", device=device, onnx_providers=providers,
                             antelopev2_dir=args.antelopev2_dir)
    tokenizer, text_encoder = load_text(files, dtype)
    components = Components(vae=load_vae(files, dtype).to(device), tokenizer=tokenizer,
                            text_encoder=text_encoder.to(device), faces=faces, info=model_info(files),
                            device=torch.device(device), dtype=dtype)
    selection = int(args.face_selection) if args.face_selection.isdigit() else args.face_selection
    options = PrepareOptions(stride=args.stride, min_face_fraction=args.min_face_fraction, cross_faces=args.cross_faces,
                             mask=args.mask, face_selection=selection, retry_skipped=args.retry_skipped)
    report = prepare_dataset(components, args.clips, args.out, args.captions, options, model_id=str(Path(args.model).name))
    print("\n".join(report.lines()))
    print(f"dataset: {args.out} (manifest.jsonl, report.txt)")
    return 0 if report.ok or report.already else 1
