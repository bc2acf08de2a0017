"""Batch jobs from a CSV file: one row = face photo + prompt (+ negative prompt, seed, overrides)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass, field

from ..errors import ConsisIDError

_ALIASES = {
    "face": ("face", "face_image", "image", "photo", "face_path"),
    "prompt": ("prompt", "positive", "positive_prompt", "text"),
    "negative_prompt": ("negative_prompt", "negative", "neg"),
    "seed": ("seed",),
    "job": ("job", "name", "id", "job_id"),
    "overrides": ("overrides", "override"),
}


class JobsFileError(ConsisIDError, ValueError):
    """The jobs CSV cannot be used as a whole (no face/prompt column, unreadable, duplicate job names)."""


@dataclass
class Job:
    """One video to make."""

    name: str
    key: str  # stable identity for resume: the explicit job name or a hash of the row's content
    row: int
    face: str
    prompt: str
    negative_prompt: str | None = None
    seed: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # a row-level problem: the job is reported failed without running
    attempts: int = 0  # runs started in this batch (transport errors are retried up to a limit)


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def parse_overrides(text: str) -> dict[str, str]:
    """`steps=30; cfg=7` (also `,`-separated) -> {"steps": "30", "cfg": "7"}."""
    result = {}
    for item in re.split(r"[;\n]", text or ""):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override '{item.strip()}' is not key=value")
        result[key.strip()] = value.strip()
    return result


def _job_key(job: Job) -> str:
    content = json.dumps(
        [os.path.normcase(job.face), job.prompt, job.negative_prompt, job.seed, sorted(job.overrides.items())]
    )
    return hashlib.sha1(content.encode()).hexdigest()[:12]


def load_jobs(csv_path: str) -> list[Job]:
    """Read the jobs CSV; face paths are relative to the CSV's folder. Row problems are kept on the job."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            rows = list(reader)
    except OSError as exc:
        raise JobsFileError(f"cannot read the jobs file {csv_path}: {exc}") from exc
    columns: dict[str, str] = {}
    for column in fields:
        norm = _norm(column or "")
        for role, aliases in _ALIASES.items():
            if norm in aliases and role not in columns:
                columns[role] = column
                break
    for role in ("face", "prompt"):
        if role not in columns:
            raise JobsFileError(
                f"{csv_path}: no '{role}' column (columns found: {', '.join(fields) or 'none'}); "
                "expected at least face,prompt[,negative_prompt,seed,...]"
            )
    override_columns = [c for c in fields if c and c not in columns.values()]
    base = os.path.dirname(os.path.abspath(csv_path))
    jobs: list[Job] = []
    for number, row in enumerate(rows, start=1):
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # blank line
        face = (row.get(columns["face"]) or "").strip()
        job = Job(
            name=(row.get(columns.get("job", ""), "") or "").strip() or f"job-{number:03d}",
            key="",
            row=number,
            face=os.path.normpath(os.path.join(base, face)) if face else "",
            prompt=(row.get(columns["prompt"]) or "").strip(),
        )
        problems = []
        if "negative_prompt" in columns:
            job.negative_prompt = (row.get(columns["negative_prompt"]) or "").strip()
        seed_text = (row.get(columns.get("seed", ""), "") or "").strip()
        if seed_text:
            try:
                job.seed = int(float(seed_text))
            except ValueError:
                problems.append(f"seed '{seed_text}' is not a number")
        for column in override_columns:
            value = (row.get(column) or "").strip()
            if value:
                job.overrides[column.strip()] = value
        if "overrides" in columns:
            try:
                job.overrides.update(parse_overrides(row.get(columns["overrides"]) or ""))
            except ValueError as exc:
                problems.append(str(exc))
        if not face:
            problems.append("no face image given")
        elif not os.path.isfile(job.face):
            problems.append(f"face image not found: {job.face}")
        if not job.prompt:
            problems.append("empty prompt")
        job.error = "; ".join(problems) or None
        job.key = job.name if "job" in columns and (row.get(columns["job"]) or "").strip() else _job_key(job)
        jobs.append(job)
    seen: dict[str, int] = {}
    for job in jobs:  # identical rows are separate jobs: number the repeats so each has its own key
        seen[job.key] = seen.get(job.key, 0) + 1
        if seen[job.key] > 1:
            job.key = f"{job.key}-{seen[job.key]}"
    names = [j.name for j in jobs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise JobsFileError(f"{csv_path}: job names must be unique, repeated: {', '.join(duplicates)}")
    return jobs
