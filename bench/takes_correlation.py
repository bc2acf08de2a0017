"""How well does an early preview predict a finished take? Rank correlation of preview vs final identity.

Early pick (`generate --takes N --pick-at F`) ranks takes on a preview: the clean video the sampler predicts at
step round(F x steps), decoded one latent frame at a time. Whether that ranking agrees with the finished takes'
identity scores is not measured on the real weights yet; this measures it. Every seed runs to the end once;
its preview is scored at each fraction and the finished video at the end (N full generations plus scoring).

    python bench/takes_correlation.py --model models/consisid/ConsisID-preview --face photo.jpg --seeds 8 \\
        --pick-at 0.2,0.3,0.5 [--steps 50] [--prompt "..."] [--device cuda] [--eval-dir models/consisid/eval]

Prints one row per seed (preview identity at each step, final identity) and Spearman's rho per fraction; rho
near 1 means early pick keeps the take a full run would keep. `--json FILE` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_common import REPO  # noqa: E402,F401  (puts the repository root on sys.path, as every bench script)

DEFAULT_PROMPT = ("The video shows a person standing in a sunlit park, looking into the camera with a gentle smile. "
                  "A light breeze moves the leaves behind them; soft warm light, shallow depth of field.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="ConsisID model folder (real weights)")
    parser.add_argument("--face", type=Path, required=True, help="photo of the person (also the scoring reference)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--seeds", type=int, default=8, help="how many seeds, from --seed (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pick-at", default="0.2,0.3,0.5", help="comma-separated fractions of the steps")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=6.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--offload", default="none", help="memory mode as in generate --offload")
    parser.add_argument("--eval-dir", type=Path, default=None, help="Inception + CLIP folder (default models/consisid/eval)")
    parser.add_argument("--buffalo-l-dir", type=Path, default=None)
    parser.add_argument("--score-device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from consisid_core import choices, load_engine
    from consisid_core.face import extract_identity, load_face_models
    from consisid_core.metrics import load_eval_models
    from consisid_core.runtime import resolve_runtime
    from consisid_core.takes import TakeRequest, TakeScorer, take_seeds
    from consisid_core.takes.correlation import early_vs_final

    fractions = [float(f) for f in args.pick_at.split(",") if f.strip()]
    seeds = take_seeds(args.seed, args.seeds)
    models = load_eval_models(args.model, args.eval_dir, args.score_device, args.buffalo_l_dir)
    scorer = TakeScorer(models, args.face, args.prompt)  # a photo without a face stops here
    runtime = resolve_runtime(device=args.device, memory_mode=choices.MEMORY_MODE_SHORT[args.offload])
    faces = load_face_models(args.model / "face_encoder", runtime=runtime)
    identity = extract_identity(faces, args.face)
    del faces
    engine = load_engine(args.model, runtime=runtime)
    request = TakeRequest(args.prompt, image=identity.face_image, id_cond=identity.id_cond,
                          id_vit_hidden=identity.id_vit_hidden,
                          kps_cond=identity.face_kps if engine.info.is_kps else None,
                          num_inference_steps=args.steps, guidance_scale=args.guidance,
                          vae_tiling=str(engine.device).startswith("cuda"))
    result = early_vs_final(engine, request, seeds, fractions, scorer)
    print(result.table())
    if args.json is not None:
        args.json.write_text(json.dumps({
            "seeds": result.seeds, "steps": result.steps, "final_identity": [s.identity for s in result.final],
            "preview_identity": {str(k): [s.identity for s in v] for k, v in result.preview.items()},
            "spearman": {str(k): result.identity_correlation(k) for k in result.preview},
        }, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
