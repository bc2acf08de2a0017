"""`batch --takes N`: every job becomes N take-jobs (seeds seed, seed+1, ...), then each job keeps its best take.

The take-jobs are ordinary jobs (their own keys, videos and results.jsonl lines), so a rerun skips the takes
already made and ComfyUI reuses the prompt and face work of one job's takes (they run one after another and
only the seed changes). After the batch, each take is scored here against the job's face and prompt (scores
kept on the take's line, so a rerun does not score it again), the takes are ranked by the rule of
consisid_core.takes.rank, and one line per job records every take's scores and the kept seed and video.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Callable

from ..errors import ConsisIDError, UnsupportedInputError
from .jobs import Job
from .journal import ResultsLog, now
from .options import FAILED, OK

DEFAULT_SEED = 42  # the Sampler's default, when neither the CSV nor the workflow gives a seed


def add_takes_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("takes (--takes N: several seeds per job, the best kept by identity)")
    group.add_argument("--takes", type=int, default=1, metavar="N",
                       help="render N takes of every job (seeds seed..seed+N-1), score them with the --score-* "
                            "models and keep the best per job in results.jsonl; N x the time (default 1)")
    group.add_argument("--motion-floor", type=float, default=None, metavar="PX",
                       help="a take moving less than this (px/frame) cannot be kept (default 0.3)")


def _workflow_seed(workflow: dict) -> int:
    from ..node_ids import SAMPLER

    for node in workflow.values():
        if isinstance(node, dict) and node.get("class_type") == SAMPLER:
            seed = node.get("inputs", {}).get("seed")
            if isinstance(seed, int) and not isinstance(seed, bool):
                return seed
    return DEFAULT_SEED


@dataclasses.dataclass
class BatchTakes:
    """The take-jobs of a batch and, per original job, the keys of its takes by seed."""

    jobs: list[Job]
    originals: list[Job]
    takes_of: dict[str, dict[int, str]]  # job key -> {seed: take-job key}
    motion_floor: float

    def pick(self, out_dir: str, models, protocol: str = "fixed", log: Callable[[str], None] = print) -> dict[str, dict]:
        """Score the finished takes, rank each job's takes and append one line per job; returns those lines."""
        return pick_best_takes(out_dir, self, models, protocol, log)

    def pick_with_args(self, args: argparse.Namespace, out_dir: str) -> dict[str, dict]:
        """`pick` with the scoring models the --score-* options name (checked before the batch started)."""
        from ..metrics import load_eval_models

        models = load_eval_models(args.score_model, args.score_eval_dir, args.score_device, args.score_buffalo_l_dir)
        lines = self.pick(out_dir, models, args.score_protocol)
        kept = sum(1 for line in lines.values() if line["status"] == OK)
        print(f"takes: kept the best of {len(next(iter(self.takes_of.values()), {}))} for {kept} of {len(lines)} "
              "job(s); each take's scores and the kept seed are in results.jsonl")
        return lines


def expand_jobs(jobs: list[Job], takes: int, workflow: dict, motion_floor: float | None = None) -> BatchTakes:
    """N take-jobs per job, one after another; jobs with a row error stay single (they are reported failed)."""
    from ..takes.plan import take_seeds
    from ..takes.rank import MOTION_FLOOR

    base = _workflow_seed(workflow)
    out, takes_of = [], {}
    for job in jobs:
        if job.error:
            out.append(job)
            continue
        seeds = take_seeds(base if job.seed is None else job.seed, takes)
        takes_of[job.key] = {}
        for i, seed in enumerate(seeds):
            take = dataclasses.replace(job, name=f"{job.name} take {i + 1}/{takes} (seed {seed})",
                                       key=f"{job.key}#take-seed-{seed}", seed=seed,
                                       output_name=f"{job.output_name}_seed{seed}", attempts=0, last_error=None)
            out.append(take)
            takes_of[job.key][seed] = take.key
    floor = MOTION_FLOOR if motion_floor is None else float(motion_floor)
    return BatchTakes(out, list(jobs), takes_of, floor)


def takes_for_batch(args: argparse.Namespace, jobs: list[Job], workflow: dict) -> BatchTakes | None:
    """None without --takes; otherwise the checked take-jobs (bad count, --score with --takes, missing scoring
    files: one line, before any job is submitted)."""
    from ..takes.plan import check_take_count

    if args.takes == 1:
        return None
    check_take_count(args.takes)
    if getattr(args, "score", False):
        raise UnsupportedInputError("--takes scores every take already (with the --score-* models); leave out --score")
    floor = args.motion_floor
    if floor is not None and not 0 <= floor < float("inf"):
        raise UnsupportedInputError(f"--motion-floor must be a number of pixels per frame, at least 0; got {floor}")
    from .scoring import check_score_files

    try:
        check_score_files(args)
    except ConsisIDError as exc:
        raise ConsisIDError(f"--takes ranks takes with the scoring models, and they are not ready: {exc}") from exc
    return expand_jobs(jobs, args.takes, workflow, floor)


def _take_scores(record: dict, job: Job, models, protocol: str, references: dict, log) -> dict | None:
    """The take's scores (cached on its results line, or computed now); None when it cannot be scored."""
    from ..metrics import encode_reference, score_video
    from ..metrics.video_io import read_video

    cached = record.get("scores")
    if isinstance(cached, dict) and cached.get("protocol") == protocol and "error" not in cached:
        return cached
    try:
        if job.face not in references:
            references[job.face] = encode_reference(models, job.face)
        s = score_video(models, read_video(record["output"]), references[job.face], job.prompt, protocol)
    except ConsisIDError as exc:
        log(f"{record.get('job')}: not scored: {exc}")
        return None
    return {"protocol": protocol, "facesim_arc": s.facesim_arc, "facesim_cur": s.facesim_cur,
            "clipscore": s.clipscore, "fid": s.fid, "motion": s.motion, "face_frames": len(s.face_frames),
            "scored_frames": int(len(s.per_frame["frame_index"]))}


def pick_best_takes(out_dir: str, batch: BatchTakes, models, protocol: str = "fixed",
                    log: Callable[[str], None] = print) -> dict[str, dict]:
    """See the module docstring; a job none of whose takes finished gets a `failed` line."""
    from ..takes.rank import TakeScores, rank_takes

    results = ResultsLog(out_dir)
    finals = results.finals()
    references: dict = {}
    written = {}
    for job in batch.originals:
        if job.key not in batch.takes_of:
            continue
        takes, scored = [], []
        for seed, key in batch.takes_of[job.key].items():
            record = finals.get(key)
            entry = {"seed": seed, "key": key, "status": None if record is None else record.get("status"),
                     "output": None if record is None else record.get("output")}
            if record is not None and record.get("status") == OK and record.get("output"):
                scores = _take_scores(record, job, models, protocol, references, log)
                if scores is not None:
                    if record.get("scores") != scores:
                        results.write({**record, "scores": scores, "scored_at": now()})
                    entry["scores"] = scores
                    scored.append((seed, TakeScores(scores["facesim_arc"], scores["facesim_cur"], scores["motion"],
                                                    scores["clipscore"], scores["face_frames"],
                                                    scores["scored_frames"])))
            takes.append(entry)
        line = {"job": job.name, "key": job.key, "face": job.face, "time": now(), "takes": takes,
                "protocol": protocol, "motion_floor": batch.motion_floor}
        if scored:
            ranking = rank_takes([s for s, _ in scored], [t for _, t in scored], motion_floor=batch.motion_floor)
            best = ranking.winner.seed
            rank_of = {t.seed: t.rank for t in ranking.takes}
            for entry in takes:
                entry["rank"] = rank_of.get(entry["seed"])
            kept = next(e for e in takes if e["seed"] == best)
            line.update(status=OK, output=kept["output"], kept_seed=best, why=ranking.why, error=None)
            log(f"{job.name}: kept seed {best} ({ranking.why})")
        else:
            line.update(status=FAILED, output=None, kept_seed=None, error="no take of this job finished and scored")
            log(f"{job.name}: no take finished and scored")
        results.write(line)
        written[job.key] = line
    return written
