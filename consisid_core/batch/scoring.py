"""`batch --score`: identity scores for every finished job, added to results.jsonl, and a summary per prompt and face.

Runs after the batch in the CLI's own process (the scoring models are local files). Each scored job gets a new
final line in results.jsonl — its previous record plus `scores` — so the journal stays append-only and the last
line of a job carries its scores. Jobs that already have scores of the same protocol are not scored again.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConsisIDError
from .jobs import Job
from .journal import ResultsLog, now
from .options import OK

SUMMARY_FILE = "scores_summary.json"
KEYS = ("facesim_arc", "facesim_cur", "clipscore", "fid", "motion")


def _means(rows: list[dict]) -> dict:
    out = {"videos": len(rows)}
    for key in KEYS:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def score_results(out_dir: str, jobs: list[Job], models, protocol: str = "fixed",
                  log: Callable[[str], None] = print) -> dict:
    """Score each OK job's video against its face photo and prompt; returns (and writes) the summary."""
    from ..metrics import encode_reference, score_video
    from ..metrics import fid as fid_mod
    from ..metrics.video_io import read_video

    results = ResultsLog(out_dir)
    by_key = {job.key: job for job in jobs}
    references: dict[str, object] = {}
    scored: list[tuple[Job, dict, np.ndarray]] = []
    for key, record in results.finals().items():
        job = by_key.get(key)
        if job is None or record.get("status") != OK or not record.get("output"):
            continue
        previous = record.get("scores")
        if isinstance(previous, dict) and previous.get("protocol") == protocol and "error" not in previous:
            scored.append((job, previous, np.zeros((0, 2048))))
            continue
        try:
            if job.face not in references:
                references[job.face] = encode_reference(models, job.face)
            s = score_video(models, read_video(record["output"]), references[job.face], job.prompt, protocol)
            scores = {"protocol": protocol, "facesim_arc": s.facesim_arc, "facesim_cur": s.facesim_cur,
                      "clipscore": s.clipscore, "fid": s.fid, "motion": s.motion, "face_frames": len(s.face_frames),
                      "scored_frames": int(len(s.per_frame["frame_index"]))}
            scored.append((job, scores, s.inception_features))
            log(f"{job.name}: arc {s.facesim_arc:.3f} cur {s.facesim_cur:.3f} motion {s.motion:.2f}")
        except ConsisIDError as exc:  # one bad video must not stop the ranking of the others
            scores = {"protocol": protocol, "error": str(exc)}
            log(f"{job.name}: not scored: {exc}")
        results.write({**record, "scores": scores, "scored_at": now()})
    rows = [(job, sc) for job, sc, _ in scored]
    summary = {
        "protocol": protocol,
        "all": _means([sc for _, sc in rows]),
        "per_prompt": {p: _means([sc for j, sc in rows if j.prompt == p]) for p in dict.fromkeys(j.prompt for j, _ in rows)},
        "per_face": {f: _means([sc for j, sc in rows if j.face == f]) for f in dict.fromkeys(j.face for j, _ in rows)},
    }
    feats = [f for _, _, f in scored if len(f)]
    if protocol == "fixed" and feats and references:
        summary["set_fid"] = fid_mod.set_fid(np.stack([r.inception for r in references.values()]), np.concatenate(feats))
    Path(out_dir, SUMMARY_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return summary


def format_summary(summary: dict) -> str:
    """Mean scores per prompt and per face, best FaceSim-Arc first."""
    def line(name: str, m: dict) -> str:
        def f(key: str, digits: int) -> str:
            return "-" if m.get(key) is None else f"{m[key]:.{digits}f}"
        return (f"  {name[:48]:48s} n={m['videos']:<3d} arc {f('facesim_arc', 3)}  cur {f('facesim_cur', 3)}  "
                f"clip {f('clipscore', 2)}  fid {f('fid', 2)}  motion {f('motion', 2)}")

    def ranked(group: dict) -> list[str]:
        order = sorted(group.items(), key=lambda kv: -(kv[1].get("facesim_arc") or 0.0))
        return [line(os.path.basename(k) if os.sep in k else k, v) for k, v in order]

    parts = [f"identity scores ({summary['protocol']} protocol):", line("all videos", summary["all"]), "per prompt:",
             *ranked(summary["per_prompt"]), "per face:", *ranked(summary["per_face"])]
    if summary.get("set_fid") is not None:
        parts.append(f"set FID (all face frames vs all reference faces): {summary['set_fid']:.2f}")
    return "\n".join(parts)


def check_score_files(args: argparse.Namespace) -> None:
    """The scoring models' files are all there (--score-model, --score-eval-dir, --score-buffalo-l-dir); else
    EvalFilesError naming each missing one, before any video is made."""
    from ..metrics import locate_eval_files

    locate_eval_files(args.score_model, args.score_eval_dir, args.score_buffalo_l_dir)


def score_batch(args: argparse.Namespace, jobs: list, out_dir: str) -> None:
    """Load the scoring models (a missing file stops here with the list of files) and score the batch."""
    from ..metrics import load_eval_models

    models = load_eval_models(args.score_model, args.score_eval_dir, args.score_device, args.score_buffalo_l_dir)
    summary = score_results(out_dir, jobs, models, args.score_protocol)
    print(format_summary(summary))
