"""`generate --takes N`: several seeds of one request, ranked by the paper's identity scores, the best written.

`takes_from_args` checks everything that needs no model (count, early pick, output files) right after the
other arguments; `TakesRun.prepare_scorer` finds and loads the scoring models and the reference face before
the video model loads; `TakesRun.run` generates, ranks and writes the best video, the ranking table (and
every take with --keep-takes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..choices import SCORE_PROTOCOLS
from ..errors import ConsisIDError, UnsupportedInputError


def add_takes_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("takes (--takes N: several seeds, the best kept by identity)")
    group.add_argument("--takes", type=int, default=1, metavar="N",
                       help="make N takes (seeds --seed, --seed+1, ...), score each against --face with FaceSim-Arc/Cur, "
                            "motion and CLIPScore, and write the best to --out; N x the time (default 1)")
    group.add_argument("--take-seeds", default=None, metavar="S1,S2,...",
                       help="the takes' seeds as a list instead of --seed counting up (sets N)")
    group.add_argument("--keep-takes", action="store_true",
                       help="also write every finished take as <out>_seed<S>.mp4")
    group.add_argument("--pick-at", type=float, default=None, metavar="FRACTION",
                       help="early pick: run every take to this fraction of --steps (e.g. 0.3), score a preview and "
                            "finish only the best --pick-keep (not yet measured against final scores on real weights)")
    group.add_argument("--pick-keep", type=int, default=1, metavar="K", help="takes finished after --pick-at (default 1)")
    group.add_argument("--motion-floor", type=float, default=None, metavar="PX",
                       help="a take moving less than this (mean optical flow, px/frame) cannot win (default 0.3)")
    group.add_argument("--takes-protocol", choices=SCORE_PROTOCOLS, default="fixed",
                       help="scoring protocol for ranking takes (default %(default)s)")
    group.add_argument("--eval-dir", type=Path, default=None,
                       help="folder with inception_v3_google-0cc3c7bd.pth and clip-vit-base-patch32/ "
                            "(default: models/consisid/eval next to the model folder)")
    group.add_argument("--buffalo-l-dir", type=Path, default=None,
                       help="insightface buffalo_l folder if not in <model>/face_encoder/models/buffalo_l")
    group.add_argument("--score-device", default="cpu", help="torch device of the scoring models (default cpu)")


def take_path(out: Path, seed: int) -> Path:
    """Where --keep-takes writes the take of `seed`."""
    return out.with_name(f"{out.stem}_seed{seed}{out.suffix}")


def ranking_path(out: Path) -> Path:
    """The ranking table next to the video: <out>.takes.txt (and .takes.json)."""
    return out.with_name(f"{out.stem}.takes.txt")


def takes_from_args(args: argparse.Namespace) -> "TakesRun | None":
    """None for a plain run; otherwise the checked plan (bad count, fraction or an existing output: one line)."""
    from .. import validate
    from ..takes import plan_takes
    from ..takes.rank import MOTION_FLOOR
    from ..output_paths import check_new_files

    asked = args.takes != 1 or args.pick_at is not None or args.keep_takes or args.take_seeds is not None
    if not asked:
        return None
    seeds = None
    if args.take_seeds is not None:
        try:
            seeds = [int(s) for s in args.take_seeds.split(",") if s.strip()]
        except ValueError:
            raise UnsupportedInputError(f"--take-seeds must be whole numbers separated by commas; got {args.take_seeds!r}") from None
        if args.takes != 1 and args.takes != len(seeds):
            raise UnsupportedInputError(f"--takes {args.takes} and --take-seeds with {len(seeds)} seeds disagree; give one")
    plan = plan_takes(args.seed, args.takes, args.steps, seeds=seeds, pick_at=args.pick_at, keep=args.pick_keep)
    floor = MOTION_FLOOR if args.motion_floor is None else args.motion_floor
    if not floor >= 0 or floor == float("inf"):
        raise UnsupportedInputError(f"--motion-floor must be a number of pixels per frame, at least 0; got {floor}")
    out = Path(args.out).expanduser()
    overwrite = getattr(args, "overwrite", False)
    check_new_files([ranking_path(out), ranking_path(out).with_suffix(".json")], option="--out", overwrite=overwrite)
    for path in [take_path(out, s) for s in plan.seeds] if args.keep_takes else []:
        validate.check_output_file(path, overwrite=overwrite, option="--keep-takes")
    return TakesRun(args, plan, floor)


class TakesRun:
    """One `generate --takes` run: scoring models and reference face first, then the takes."""

    def __init__(self, args: argparse.Namespace, plan: Any, motion_floor: float) -> None:
        self.args, self.plan, self.motion_floor = args, plan, motion_floor
        self.scorer = None

    def prepare_scorer(self, model: Path, face_path: Path) -> None:
        """Load the scoring models and encode the reference face (missing files or no face: one line, now)."""
        from ..metrics import load_eval_models, locate_eval_files
        from ..takes import TakeScorer

        if self.plan.count == 1 and not self.plan.early:
            return
        try:
            locate_eval_files(model, self.args.eval_dir, self.args.buffalo_l_dir)
        except ConsisIDError as exc:
            raise ConsisIDError(f"--takes {self.plan.count} ranks takes with the scoring models, and they are not "
                                f"ready: {exc}") from exc
        models = load_eval_models(model, self.args.eval_dir, self.args.score_device, self.args.buffalo_l_dir)
        self.scorer = TakeScorer(models, face_path, self.args.prompt, self.args.takes_protocol)

    def run(self, engine: Any, identity: Any, height: int, width: int, frames: int, tiling: bool, cache: Any) -> Any:
        """Generate and rank the takes; write the ranking (and every take); returns the result (best frames)."""
        from tqdm.auto import tqdm

        from ..takes import TakeRequest, format_ranking, run_takes

        args, plan = self.args, self.plan
        request = TakeRequest(
            args.prompt, args.negative_prompt, image=identity.face_image, id_cond=identity.id_cond,
            id_vit_hidden=identity.id_vit_hidden, kps_cond=identity.face_kps if engine.info.is_kps else None,
            height=height, width=width, num_frames=frames, num_inference_steps=args.steps,
            guidance_scale=args.guidance, use_dynamic_cfg=args.dynamic_cfg, noise_device=args.noise_device,
            cache=cache, vae_tiling=tiling)
        bars: list = []

        def on_take(event) -> None:
            for bar in bars:
                bar.close()
            phase = {"preview": f" to step {event.steps} (early pick)", "finish": " (finishing)"}.get(event.phase, "")
            bars[:] = [tqdm(total=event.steps, desc=f"take {event.index + 1}/{event.count} seed {event.seed}{phase}",
                            unit="step")]

        try:
            result = run_takes(engine, request, plan, self.scorer, keep_takes=args.keep_takes, on_take=on_take,
                               callback=lambda step, total, latents: bars[0].update(1) if bars else None,
                               motion_floor=self.motion_floor)
        finally:
            for bar in bars:
                bar.close()
        table = format_ranking(result.ranking)
        print(table, flush=True)
        print(f"denoising steps run: {result.steps_run} (one take: {args.steps})", flush=True)
        self.result = result
        self._table = table
        return result

    def run_and_write(self, engine: Any, identity: Any, height: int, width: int, frames: int, tiling: bool,
                      cache: Any, timings: dict) -> int:
        """The whole takes stage of `generate`: takes, the best video at --out, the ranking, the kept takes."""
        import time

        from ..video import count_frames
        from .output import write_video_file

        start = time.perf_counter()
        result = self.run(engine, identity, height, width, frames, tiling, cache)
        timings["takes"] = time.perf_counter() - start
        if cache is not None:
            print(cache.summary() + " (last take)", flush=True)
        out = write_video_file(result.frames, self.args.out, fps=self.args.fps, overwrite=self.args.overwrite)
        extra = self.write(self.args.fps)
        print(f"wrote {out} (seed {result.seed}, {count_frames(out)} frames, {width}x{height}, {self.args.fps:g} fps)")
        print("and " + ", ".join(str(p) for p in extra))
        print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
        if self.args.random_weights:
            print("reminder: random weights were used, so the videos are noise.")
        return 0

    def write(self, fps: float) -> list[Path]:
        """The ranking table (text and JSON) next to --out, and every take with --keep-takes."""
        from .output import write_video_file
        from ..output_paths import write_text_through_partial

        out = Path(self.args.out).expanduser()
        overwrite = getattr(self.args, "overwrite", False)
        written = []
        text = ranking_path(out)
        rows = {"kept_seed": self.result.seed, "why": self.result.ranking.why, "takes": self.result.ranking.as_rows(),
                "motion_floor": self.motion_floor, "steps_run": self.result.steps_run,
                "pick_step": self.plan.pick_step}
        for path, body in ((text, self._table + "\n"), (text.with_suffix(".json"), json.dumps(rows, indent=2) + "\n")):
            written.append(write_text_through_partial(path, body, overwrite=overwrite))
        for seed, frames in self.result.takes.items():
            written.append(write_video_file(frames, take_path(out, seed), fps=fps, overwrite=overwrite))
        return written
