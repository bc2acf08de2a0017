"""Tables of scores: the CSV of eval_all_in_once.py (plus motion) and a summary in the paper's columns."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .folder import FolderScores

CSV_COLUMNS = ("output_path", "face", "prompt", "cur_score", "arc_score", "fid_score", "clip_score", "motion",
               "face_frames", "scored_frames", "protocol")
PAPER_TABLE1 = (("ID-Animator (paper)", 0.32, 0.33, 24.97, 117.46), ("ConsisID (paper)", 0.58, 0.60, 27.93, 151.82))


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def write_csv(path: str | os.PathLike, scores: FolderScores, overwrite: bool = True) -> Path:
    """One row per video, then an `Average` row (and `SetFID` for the fixed protocol); written to a partial file
    and renamed, so a failure leaves no half table (an existing file is replaced only with `overwrite`)."""
    from ..output_paths import write_through_partial

    return write_through_partial(path, lambda partial: _write_rows(partial, scores), overwrite=overwrite)


def _write_rows(path: Path, scores: FolderScores) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for job, s in scores.results:
            row = {"output_path": str(job.video) if isinstance(job.video, (str, os.PathLike)) else job.name,
                   "face": str(job.face) if isinstance(job.face, (str, os.PathLike)) else "", "prompt": job.prompt or "",
                   **s.as_row()}
            writer.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
        avg = scores.average
        writer.writerow([_cell(v) for v in ("Average", "", "", avg.get("facesim_cur"), avg.get("facesim_arc"),
                                             avg.get("fid"), avg.get("clipscore"), avg.get("motion"), "", "",
                                             scores.protocol)])
        if scores.protocol == "fixed":
            writer.writerow([_cell(v) for v in ("SetFID", "", "", "", "", scores.set_fid, "", "", "", "", "fixed")])


def summary_table(scores: FolderScores) -> str:
    """FaceSim-Arc, FaceSim-Cur, CLIPScore, FID (+ motion), as in the paper's Table 1, with its values for orientation."""
    avg = scores.average
    fid = scores.set_fid if scores.protocol == "fixed" else avg.get("fid")
    fid_name = "FID (set)" if scores.protocol == "fixed" else "FID (script)"
    head = f"{'':24s} {'FaceSim-Arc':>11s} {'FaceSim-Cur':>11s} {'CLIPScore':>10s} {fid_name:>12s} {'Motion':>8s}"

    def fmt(v, width, digits=3):
        return f"{'-':>{width}s}" if v is None else f"{v:>{width}.{digits}f}"

    label = f"this run ({len(scores.results)} videos, {scores.protocol})"
    lines = [head, f"{label[:24]:24s} {fmt(avg.get('facesim_arc'), 11)} {fmt(avg.get('facesim_cur'), 11)} "
                   f"{fmt(avg.get('clipscore'), 10, 2)} {fmt(fid, 12, 2)} {fmt(avg.get('motion'), 8, 2)}"]
    for name, arc, cur, clip, pfid in PAPER_TABLE1:
        lines.append(f"{name:24s} {arc:>11.2f} {cur:>11.2f} {clip:>10.2f} {pfid:>12.2f} {'-':>8s}")
    lines.append("(paper values: refined prompts and a newer checkpoint than ConsisID-preview; its FID is the "
                 "script's per-frame value, comparable only under --protocol consisid)")
    return "\n".join(lines)
