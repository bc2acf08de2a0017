"""Benchmark: one training step (LoRA and full fine-tune) on a real-width, few-layer ConsisID transformer.

The transformer has the real width (48 heads x 64 = 3072, real face-extractor and perceiver sizes, 226-token
text) but `--layers` blocks. Each row runs in its own process (clean peak memory): ours (the trainer's model:
the one block loop of consisid_core, face tokens from the local extractor) and the reference way (diffusers'
`ConsisIDTransformer3DModel.forward` with id_cond / id_vit_hidden, as the authors' train.py calls it), same
batch, same loss, same optimizer. Prints the median seconds per optimizer step, the peak memory (CPU: peak RSS
of the process; CUDA: max allocated) and ratios ours / reference.

    python bench/bench_train.py [--layers 2] [--frames 9] [--height 96] [--width 144] [--steps 2] [--modes lora,full]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from bench_common import REPO  # noqa: E402,F401  (puts the repository root on sys.path)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def real_width_config(layers: int, height: int, width: int, frames: int) -> dict:
    """ConsisID-preview's transformer config with `layers` blocks and sample size set to the benchmark's video."""
    return dict(
        num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, time_embed_dim=512,
        text_embed_dim=4096, num_layers=layers, sample_width=width // 8, sample_height=height // 8, sample_frames=frames,
        max_text_seq_length=226, use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
        is_train_face=True, is_kps=False, cross_attn_interval=2, cross_attn_dim_head=128, cross_attn_num_heads=16,
        LFE_id_dim=1280, LFE_vit_dim=1024, LFE_depth=10, LFE_dim_head=64, LFE_num_heads=16, LFE_num_id_token=5,
        LFE_num_querie=32, LFE_output_dim=2048, LFE_ff_mult=4, LFE_num_scale=5, local_face_scale=1.0,
    )


def child(args: argparse.Namespace) -> None:
    import torch
    from diffusers import ConsisIDTransformer3DModel

    from consisid_core.model_info import ModelInfo
    from consisid_core.engine.rotary import rotary_embeddings
    from consisid_core.demo.video_models import build_scheduler
    from consisid_core.training.adapters import param_groups, setup_trainable
    from consisid_core.training.losses import batch_loss, per_element_loss
    from consisid_core.training.recipe import TrainConfig
    from consisid_core.training.trainer import TrainingModel

    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    config = real_width_config(args.layers, args.height, args.width, args.frames)
    transformer = ConsisIDTransformer3DModel(**config)
    mode, impl = args.child.split(":")
    train = TrainConfig(mode=mode, lora_rank=128, lora_alpha=128, learning_rate=1e-4, warmup_steps=0,
                        gradient_checkpointing=args.checkpointing)
    weight_dtype = dtype if mode == "lora" else torch.float32
    transformer.to(device, weight_dtype)
    if args.checkpointing:
        transformer.enable_gradient_checkpointing()
    setup_trainable(transformer, train)
    transformer.train()
    trainable = sum(p.numel() for p in transformer.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(param_groups(transformer, train), betas=(0.9, 0.95), weight_decay=1e-4)
    info = ModelInfo.from_configs(config, {"block_out_channels": (128, 256, 256, 512)})
    t = (args.frames - 1) // 4 + 1
    h, w = args.height // 8, args.width // 8
    gen = torch.Generator().manual_seed(1)
    clean = torch.randn(1, t, 16, h, w, generator=gen).to(device)
    image = torch.randn(1, t, 16, h, w, generator=gen).to(device)
    text = torch.randn(1, 226, 4096, generator=gen).to(device, dtype)
    id_cond = torch.randn(1, 1280, generator=gen).to(device, dtype)
    hidden = [torch.randn(1, 577, 1024, generator=gen).to(device, dtype) for _ in range(5)]
    scheduler = build_scheduler()
    timesteps = torch.tensor([500], device=device)
    noisy = scheduler.add_noise(clean, torch.randn(clean.shape, generator=gen).to(device), timesteps)
    rotary = rotary_embeddings(info, args.height, args.width, t, device)
    model = TrainingModel(transformer, 1.0)
    model_input = torch.cat([noisy, image], dim=2).to(dtype)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def step() -> None:
        with autocast:
            if impl == "ours":
                out = model(model_input, text, timesteps, id_cond, hidden, rotary, True)
            else:
                out = transformer(hidden_states=model_input, encoder_hidden_states=text, timestep=timesteps,
                                  image_rotary_emb=rotary, id_cond=id_cond, id_vit_hidden=hidden, return_dict=False)[0]
        loss = batch_loss(per_element_loss(scheduler, out, noisy, clean, timesteps), [None])
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in transformer.parameters() if p.grad is not None], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up (allocates the optimizer state)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({"row": args.child, "sec_per_step": statistics.median(times), "peak_bytes": peak,
                      "trainable": trainable, "params": sum(p.numel() for p in transformer.parameters())}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=144)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--modes", default="lora,full")
    parser.add_argument("--impls", default="ours,reference")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing of the blocks")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        child(args)
        return
    tokens = ((args.frames - 1) // 4 + 1) * (args.height // 16) * (args.width // 16)
    print(f"real-width ConsisID transformer, {args.layers} block(s), {args.frames}x{args.height}x{args.width} "
          f"({tokens} video + 226 text tokens), batch 1, {args.device}, median of {args.steps} step(s)")
    rows = {}
    for mode in args.modes.split(","):
        for impl in args.impls.split(","):
            row = f"{mode}:{impl}"
            command = [sys.executable, __file__, "--child", row, *sys.argv[1:]]
            done = subprocess.run(command, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                print(f"{row:16s} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else '?'}")
                continue
            rows[row] = json.loads(lines[-1])
            r = rows[row]
            print(f"{row:16s} {r['sec_per_step']:8.2f} s/step  peak {r['peak_bytes'] / 2**30:6.2f} GiB  "
                  f"trainable {r['trainable'] / 1e6:7.1f}M of {r['params'] / 1e6:.1f}M", flush=True)
    for mode in args.modes.split(","):
        ours, ref = rows.get(f"{mode}:ours"), rows.get(f"{mode}:reference")
        if ours and ref:
            print(f"{mode}: ours / reference  time {ours['sec_per_step'] / ref['sec_per_step']:.2f}x  "
                  f"peak memory {ours['peak_bytes'] / ref['peak_bytes']:.2f}x")


if __name__ == "__main__":
    main()
