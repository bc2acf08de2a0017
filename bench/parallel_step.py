"""One rank of a parallel step-time measurement (started by bench/gpu_parallel.py under torchrun).

`--impl ours`: our engine with a ParallelPlan. `--impl xdit`: diffusers' ConsisIDPipeline parallelised by
xDiT's own example code (`parallelize_transformer` from the consisid_usp_example.py that the xfuser wheel
ships), on the same random model folder. Rank 0 prints one `RESULT {json}` line and, with `--out`, saves its
latents there (bench/gpu_parallel.py compares them with one device's)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bench_common import PROMPT, SEED, Context, engine_denoise, inputs, step_seconds, sync
from random_consisid import PROFILES


def _xdit_example():
    """xDiT's consisid_usp_example module, loaded from the installed xfuser distribution (not copied)."""
    import importlib.metadata
    import importlib.util

    files = [f for f in importlib.metadata.files("xfuser") or [] if str(f).endswith("examples/consisid_usp_example.py")]
    if not files:
        raise RuntimeError("the xfuser wheel has no examples/consisid_usp_example.py")
    spec = importlib.util.spec_from_file_location("consisid_usp_example", files[0].locate())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_xdit(ctx: Context, cfg: bool, ulysses: int, ring: int) -> dict:
    from diffusers import ConsisIDPipeline
    from xfuser import xFuserArgs
    from xfuser.core.distributed import get_runtime_state, get_world_group, initialize_runtime_state

    example = _xdit_example()
    args = xFuserArgs(model=str(ctx.folder), ulysses_degree=ulysses, ring_degree=ring, use_cfg_parallel=cfg,
                      height=ctx.profile.height, width=ctx.profile.width, num_frames=ctx.profile.frames,
                      num_inference_steps=ctx.steps, prompt=PROMPT)
    engine_config, input_config = args.create_config()
    device = torch.device(f"cuda:{get_world_group().local_rank}")
    pipe = ConsisIDPipeline.from_pretrained(str(ctx.folder), torch_dtype=torch.bfloat16).to(device)
    pipe.set_progress_bar_config(disable=True)
    initialize_runtime_state(pipe, engine_config)
    get_runtime_state().set_video_input_parameters(height=ctx.profile.height, width=ctx.profile.width,
                                                   num_frames=ctx.profile.frames, batch_size=1,
                                                   num_inference_steps=ctx.steps, split_text_embed_in_sp=True)
    example.parallelize_transformer(pipe)
    face, id_cond, hidden = inputs(ctx.profile)
    stamps: list[float] = []

    def tick(pipeline, i, t, kwargs):
        sync("cuda")
        stamps.append(time.perf_counter())
        return {}

    pipe(image=face, prompt=PROMPT, height=ctx.profile.height, width=ctx.profile.width, num_frames=ctx.profile.frames,
         num_inference_steps=ctx.steps, guidance_scale=6.0, generator=torch.Generator("cuda").manual_seed(SEED),
         id_cond=id_cond.to(device, torch.bfloat16), id_vit_hidden=[h.to(device, torch.bfloat16) for h in hidden],
         output_type="latent", max_sequence_length=ctx.profile.text_len, callback_on_step_end=tick)
    return {"step_s": step_seconds(stamps), "rank": get_world_group().rank}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["ours", "xdit"], required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--profile", choices=sorted(PROFILES), required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cfg", action="store_true")
    parser.add_argument("--ulysses", type=int, default=1)
    parser.add_argument("--ring", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="rank 0 saves its latents here (torch.save)")
    args = parser.parse_args()
    ctx = Context(args.device, PROFILES[args.profile], args.folder, args.steps)
    if args.impl == "xdit":
        figures = run_xdit(ctx, args.cfg, args.ulysses, args.ring)
        writer = figures.pop("rank") == 0
    else:
        import consisid_core
        from consisid_core.parallel import ParallelConfig, init_parallel

        plan = init_parallel(ParallelConfig(args.cfg, args.ulysses, args.ring), args.device)
        engine = consisid_core.load_engine(args.folder, device=args.device, dtype="bf16", noise_device="gpu")
        engine.parallel = plan
        run = engine_denoise(ctx, engine, args.steps)
        figures = {"step_s": run.step_s, "peak_vram_gb": run.peak_vram_gb, "wall_s": run.wall_s}
        writer = plan.is_writer
        if writer and args.out:
            torch.save(run.latents, args.out)
        plan.close()
    if writer:
        print("RESULT " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
