"""`train`: the ConsisID recipe (coarse-to-fine, dynamic mask and cross-face losses) as LoRA or full fine-tuning."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="ConsisID model folder to start from")
    parser.add_argument("--data", type=Path, required=True, help="dataset folder made by prepare-data")
    parser.add_argument("--out", type=Path, required=True,
                        help="run folder for checkpoints/ and the result: new or empty, or an earlier run's (resumed); "
                             "never the model folder")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--lora-rank", type=int, default=128,
                      help="LoRA rank, 1 to the layers' width (default 128, as the reference)")
    kind.add_argument("--full", action="store_true", help="full fine-tune (writes RUN_DIR/transformer/)")
    parser.add_argument("--lora-alpha", type=int, default=None,
                        help="LoRA alpha, 1 or more: the update is scaled by alpha / rank (default: the rank)")
    parser.add_argument("--lora-face", action="store_true", help="also put LoRA on the perceiver cross-attentions")
    parser.add_argument("--max-steps", type=int, default=1800, help="optimizer steps (default 1800, as the paper)")
    parser.add_argument("--batch-size", type=int, default=1, help="clips per step per process (default 1)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate, above 0 and at most 1 (default 3e-6 full, 1e-4 LoRA)")
    parser.add_argument("--face-lr-mult", type=float, default=1.0,
                        help="learning-rate factor of the perceiver cross-attentions (the reference's is_diff_lr: 10; default 1)")
    parser.add_argument("--warmup-steps", type=int, default=200,
                        help="steps of linear learning-rate warmup, 0 or more (default %(default)s)")
    parser.add_argument("--coarse-steps", type=int, default=None,
                        help="steps of the coarse stage (global face only), 0 to --max-steps - 1; default half of "
                             "--max-steps")
    parser.add_argument("--mask-prob", type=float, default=0.5, help="alpha: probability of the face-mask loss, 0 to 1 (default %(default)s)")
    parser.add_argument("--cross-face-prob", type=float, default=0.5, help="beta: probability of a cross-face reference, 0 to 1 (default %(default)s)")
    parser.add_argument("--text-dropout", type=float, default=0.1,
                        help="probability of training a sample with the empty caption, 0 to 1 (default %(default)s)")
    parser.add_argument("--image-dropout", type=float, default=0.0,
                        help="probability of zeroing the face-image latents of a sample, 0 to 1 (default %(default)s)")
    parser.add_argument("--mixed-precision", choices=["auto", "bf16", "fp16", "no"], default="auto",
                        help="default auto: bf16 on GPU, none on CPU (accelerate launch --mixed_precision overrides)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute blocks in backward (less memory)")
    parser.add_argument("--checkpoint-every", type=int, default=500,
                        help="write a checkpoint every N steps, 1 or more (and always at the end; default %(default)s)")
    parser.add_argument("--keep-checkpoints", type=int, default=2,
                        help="how many of the newest checkpoints to keep, 0 = all (default %(default)s)")
    parser.add_argument("--seed", type=int, default=42,
                        help="seed of every random choice of the run, taken modulo 2^64 (default %(default)s)")
    parser.add_argument("--validate", type=int, default=0, metavar="N",
                        help="every N steps, render a short video of --validate-face with the current weights (default 0: never)")
    parser.add_argument("--validate-face", type=Path, default=None, help="held-out face photo for --validate")
    parser.add_argument("--validate-prompt", default="a person looks into the camera and smiles, natural light",
                        help="prompt of the validation video (default: %(default)s)")
    parser.add_argument("--validate-steps", type=int, default=20, help="denoising steps of the validation video, 1 to 1000 (default %(default)s)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if --out holds checkpoints")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished result already in --out when the run is not resumed (default: refuse)")


def config_from_args(args: argparse.Namespace):
    """The run's TrainConfig; every number is checked there (finite, in range, the range in the message)."""
    from .. import validate
    from ..training.recipe import TrainConfig

    rank = args.lora_rank
    seed = validate.normalise_seed(args.seed)
    if seed != args.seed:
        print(f"note: seed {args.seed} is outside 0..2^64-1; using {args.seed} mod 2^64 = {seed}", flush=True)
    return TrainConfig(
        mode="full" if args.full else "lora", lora_rank=rank, lora_alpha=rank if args.lora_alpha is None else args.lora_alpha,
        lora_face=args.lora_face, max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.lr,
        face_lr_mult=args.face_lr_mult, warmup_steps=args.warmup_steps, coarse_steps=args.coarse_steps,
        mask_prob=args.mask_prob, cross_face_prob=args.cross_face_prob, text_dropout=args.text_dropout,
        image_dropout=args.image_dropout, mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing, checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints, seed=seed, validate_every=args.validate,
    )


def layer_width(model: Path) -> int | None:
    """The width of the attention layers LoRA adapts (heads x head size in transformer/config.json), if readable."""
    import json

    try:
        config = json.loads((Path(model) / "transformer" / "config.json").read_bytes())
        return int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # the loader names what is wrong with the folder


def check_dataset(data: Path) -> None:
    """--data holds a dataset made by prepare-data (its dataset.json readable), checked before anything loads."""
    from ..errors import ConsisIDError
    from ..training.manifest import SETTINGS, read_settings

    try:
        read_settings(Path(data))
    except (ValueError, OSError) as exc:  # a damaged dataset.json (JSONDecodeError is a ValueError)
        raise ConsisIDError(f"--data {data}: {SETTINGS} cannot be read ({str(exc).splitlines()[0][:120]}); "
                            "run prepare-data again into a new folder") from None


def check_options(args: argparse.Namespace, config) -> None:
    """The checks that join several options (or need the model's config), before anything loads."""
    from .. import validate
    from ..errors import UnsupportedInputError
    from ..text_input import check_prompt

    check_dataset(args.data)
    if config.coarse_steps is not None and config.coarse_steps >= config.max_steps:
        raise UnsupportedInputError(
            f"--coarse-steps {config.coarse_steps} makes the whole run coarse (--max-steps {config.max_steps}), so the "
            f"local facial extractor would never train: use 0 to {config.max_steps - 1}, or leave it out (half)")
    width = layer_width(args.model) if config.mode == "lora" else None
    if width is not None and config.lora_rank > width:
        raise UnsupportedInputError(
            f"--lora-rank {config.lora_rank} is above the width of the layers it adapts ({width}); use 1 to {width} "
            "(128 is the reference's; a rank at the width is already a full-rank update)")
    if config.warmup_steps >= config.max_steps:
        print(f"note: --warmup-steps {config.warmup_steps} >= --max-steps {config.max_steps}: the learning rate "
              "never reaches its full value", flush=True)
    if args.validate > 0:
        if args.validate_face is None:
            raise UnsupportedInputError("--validate needs --validate-face PHOTO (a held-out photo of the person)")
        validate.check_image_file(args.validate_face, "--validate-face")
        check_prompt(args.validate_prompt, "--validate-prompt")
        validate.check_whole(args.validate_steps, "--validate-steps", 1, 1000)


def check_run_folder(args: argparse.Namespace, config) -> None:
    """--out: not a file, not in the model or dataset folder, writable; a finished result in it is kept unless the
    run resumes it or --overwrite is given; a damaged checkpoint or one of other settings is refused now."""
    from ..errors import ConsisIDError
    from ..training import checkpoints
    from ..training.adapters import LORA_FILE
    from ..output_paths import check_not_in_models, check_output_folder

    out = Path(args.out).expanduser()
    check_output_folder(out, option="--out", purpose="the run (checkpoints/ and the result)", models=[args.model])
    check_not_in_models(out, [args.data], "--out", what="--data folder", why="the dataset is only read")
    if not out.is_dir() or not any(out.iterdir()):
        return
    resumed = checkpoints.resumable(out, config.to_dict()) if not args.no_resume else None
    results = [p for p in (out / LORA_FILE, out / "transformer", out / "losses.json") if p.exists()]
    if resumed is None and results and not args.overwrite:
        raise ConsisIDError(f"--out {out} already holds a finished run ({results[0].name}); pass --overwrite to "
                            "replace it, or give a new folder")
    if resumed is None and not results and not (out / "checkpoints").is_dir():
        raise ConsisIDError(f"--out {out} already holds other files and is not a run folder; give a new or empty "
                            "folder (re-running on a run folder resumes it)")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_options(args, config)
    check_run_folder(args, config)  # all of this before any model (or accelerate) loads
    from ..training.trainer import train

    validation = None
    if args.validate > 0:
        from ..training.validation import setup_from_files

        validation = setup_from_files(args.model, args.validate_face, args.validate_prompt, args.validate_steps)
    result = train(args.model, args.data, args.out, config, resume=not args.no_resume, validation=validation)
    if result.finished:
        made = result.lora_path if result.lora_path is not None else result.transformer_dir
        print(f"done: {result.step} steps, last loss {result.losses[-1]:.4g}; wrote {made}")
    return 0
