"""`train`: the ConsisID recipe (coarse-to-fine, dynamic mask and cross-face losses) as LoRA or full fine-tuning."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="ConsisID model folder to start from")
    parser.add_argument("--data", type=Path, required=True, help="dataset folder made by prepare-data")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints/ and the result")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--lora-rank", type=int, default=128, help="LoRA rank (default 128, as the reference)")
    kind.add_argument("--full", action="store_true", help="full fine-tune (writes RUN_DIR/transformer/)")
    parser.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default: the rank)")
    parser.add_argument("--lora-face", action="store_true", help="also put LoRA on the perceiver cross-attentions")
    parser.add_argument("--max-steps", type=int, default=1800, help="optimizer steps (default 1800, as the paper)")
    parser.add_argument("--batch-size", type=int, default=1, help="clips per step per process (default 1)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default 3e-6 full, 1e-4 LoRA)")
    parser.add_argument("--face-lr-mult", type=float, default=1.0,
                        help="learning-rate factor of the perceiver cross-attentions (the reference's is_diff_lr: 10)")
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--coarse-steps", type=int, default=None,
                        help="steps of the coarse stage (global face only); default half of --max-steps")
    parser.add_argument("--mask-prob", type=float, default=0.5, help="alpha: probability of the face-mask loss")
    parser.add_argument("--cross-face-prob", type=float, default=0.5, help="beta: probability of a cross-face reference")
    parser.add_argument("--text-dropout", type=float, default=0.1)
    parser.add_argument("--image-dropout", type=float, default=0.0)
    parser.add_argument("--mixed-precision", choices=["auto", "bf16", "fp16", "no"], default="auto",
                        help="auto: bf16 on GPU, none on CPU (accelerate launch --mixed_precision overrides)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute blocks in backward (less memory)")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--keep-checkpoints", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--validate", type=int, default=0, metavar="N",
                        help="every N steps, render a short video of --validate-face with the current weights")
    parser.add_argument("--validate-face", type=Path, default=None, help="held-out face photo for --validate")
    parser.add_argument("--validate-prompt", default="a person looks into the camera and smiles, natural light",
                        help="prompt of the validation video")
    parser.add_argument("--validate-steps", type=int, default=20, help="denoising steps of the validation video")
    parser.add_argument("--no-resume", action="store_true", help="start over even if --out holds checkpoints")


def config_from_args(args: argparse.Namespace):
    from ..training.recipe import TrainConfig

    rank = args.lora_rank
    return TrainConfig(
        mode="full" if args.full else "lora", lora_rank=rank, lora_alpha=args.lora_alpha or rank,
        lora_face=args.lora_face, max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.lr,
        face_lr_mult=args.face_lr_mult, warmup_steps=args.warmup_steps, coarse_steps=args.coarse_steps,
        mask_prob=args.mask_prob, cross_face_prob=args.cross_face_prob, text_dropout=args.text_dropout,
        image_dropout=args.image_dropout, mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing, checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints, seed=args.seed, validate_every=args.validate,
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import UnsupportedInputError
    from ..training.trainer import train

    validation = None
    if args.validate > 0:
        if args.validate_face is None or not args.validate_face.is_file():
            raise UnsupportedInputError("--validate needs --validate-face PHOTO (a held-out photo of the person)")
        from ..training.validation import setup_from_files

        validation = setup_from_files(args.model, args.validate_face, args.validate_prompt, args.validate_steps)
    result = train(args.model, args.data, args.out, config_from_args(args), resume=not args.no_resume,
                   validation=validation)
    if result.finished:
        made = result.lora_path if result.lora_path is not None else result.transformer_dir
        print(f"done: {result.step} steps, last loss {result.losses[-1]:.4g}; wrote {made}")
    return 0
