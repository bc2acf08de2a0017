"""Score many videos: pair each with its face photo and prompt, average like eval_all_in_once.py, set-level FID."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import UnsupportedInputError
from . import fid as fid_mod
from .models import EvalModels
from .score import ReferenceFace, VideoScores, encode_reference, score_video
from .video_io import read_video

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
METRIC_KEYS = ("facesim_arc", "facesim_cur", "clipscore", "fid", "motion")


@dataclass
class ScoringJob:
    """One video to score: its name, the video (path or frames), the face photo and the prompt (or None)."""

    name: str
    video: Any
    face: Any
    prompt: str | None = None


@dataclass
class FolderScores:
    """Per-video scores, their means, and the fixed protocol's set FID over all videos."""

    protocol: str
    results: list[tuple[ScoringJob, VideoScores]] = field(default_factory=list)
    average: dict[str, float | None] = field(default_factory=dict)
    set_fid: float | None = None


def read_prompts(path: str | os.PathLike) -> dict[str, str]:
    """CSV with a `prompt` column and a `video` column (file name or stem); one prompt per video."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise UnsupportedInputError(f"Cannot read the prompts CSV {path}: {exc}") from exc
    if not rows or "prompt" not in rows[0] or "video" not in rows[0]:
        raise UnsupportedInputError(f"{path} needs a header with 'video' and 'prompt' columns (one row per video).")
    return {Path(r["video"]).stem: r["prompt"] for r in rows if r.get("video")}


def pair_faces(videos: list[Path], faces: str | os.PathLike) -> list[Path]:
    """The face photo of each video: one file for all, or from a folder the photo whose stem starts the video's
    name or one of its parent folders' names (the longest such stem wins)."""
    faces = Path(faces)
    if faces.is_file():
        return [faces] * len(videos)
    if not faces.is_dir():
        raise UnsupportedInputError(f"--faces {faces} does not exist (give a photo or a folder of photos).")
    photos = sorted((p for p in faces.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES), key=lambda p: -len(p.stem))
    if not photos:
        raise UnsupportedInputError(f"No photos ({', '.join(PHOTO_SUFFIXES)}) in {faces}.")
    paired = []
    for video in videos:
        names = [video.stem, *(p.name for p in video.parents)]
        match = next((p for p in photos if any(n.startswith(p.stem) or n.startswith(p.name) for n in names)), None)
        if match is None:
            raise UnsupportedInputError(
                f"No face photo in {faces} matches {video.name}: name videos after their photo (e.g. "
                f"{photos[-1].stem}_seed1.mp4) or pass one photo with --faces.")
        paired.append(match)
    return paired


def make_jobs(videos: list[Path], faces: str | os.PathLike, prompts: dict[str, str] | None = None) -> list[ScoringJob]:
    prompts = prompts or {}
    return [ScoringJob(v.stem, v, f, prompts.get(v.stem, prompts.get(v.name))) for v, f in zip(videos, pair_faces(videos, faces))]


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def score_folder(models: EvalModels, jobs: list[ScoringJob], protocol: str = "fixed",
                 on_result: Callable[[ScoringJob, VideoScores], None] | None = None) -> FolderScores:
    """Score every job (each face photo encoded once) and average; fixed adds the FID of all scored face
    frames against all reference faces."""
    refs: dict[str, ReferenceFace] = {}
    out = FolderScores(protocol)
    for job in jobs:
        key = str(job.face) if isinstance(job.face, (str, os.PathLike)) else f"id:{id(job.face)}"
        if key not in refs:
            refs[key] = encode_reference(models, job.face)
        frames = read_video(job.video) if isinstance(job.video, (str, os.PathLike)) else job.video
        scores = score_video(models, frames, refs[key], job.prompt, protocol)
        out.results.append((job, scores))
        if on_result is not None:
            on_result(job, scores)
    out.average = {k: _mean([getattr(s, k) for _, s in out.results]) for k in METRIC_KEYS}
    if protocol == "fixed" and out.results:
        frames = [s.inception_features for _, s in out.results if len(s.inception_features)]
        ref_feats = np.stack([r.inception for r in refs.values()])
        out.set_fid = fid_mod.set_fid(ref_feats, np.concatenate(frames)) if frames else None
    return out
