"""Batch jobs from a CSV file: one row = face photo + prompt (+ negative prompt, seed, overrides)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field

from ..validate import image_problem, normalise_seed
from .csv_text import JobsFileError, decode, read_records

_ALIASES = {
    "face": ("face", "face_image", "image", "photo", "face_path"),
    "prompt": ("prompt", "positive", "positive_prompt", "text"),
    "negative_prompt": ("negative_prompt", "negative", "neg"),
    "seed": ("seed",),
    "job": ("job", "name", "id", "job_id"),
    "overrides": ("overrides", "override"),
}


@dataclass
class Job:
    """One video to make."""

    name: str
    key: str  # stable identity for resume: the explicit job name or a hash of the row's content
    row: int
    face: str
    prompt: str
    line: int = 0  # line of the CSV the row starts on
    negative_prompt: str | None = None
    seed: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # a row-level problem: the job is reported failed without running
    attempts: int = 0  # runs started in this batch (transport errors are retried up to a limit)
    last_error: str | None = None  # the last transport error, reported if no server can run the job
    output_name: str = ""  # file-name stem of its videos, unique in the batch (see assign_output_names)

    @property
    def where(self) -> str:
        return f"row {self.row} (line {self.line})"


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


# `;` and new lines always separate overrides; a `,` only when a `key=` follows, so values may hold commas
_OVERRIDE_SEPARATOR = re.compile(r"[;\n]|,(?=\s*\w[\w.]*\s*=)")


def parse_overrides(text: str) -> dict[str, str]:
    """`steps=30; cfg=7` or `steps=30, cfg=7` -> {"steps": "30", "cfg": "7"} (`negative_prompt=blurry, ugly` keeps its comma)."""
    result = {}
    for item in _OVERRIDE_SEPARATOR.split(text or ""):
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


def _read_rows(csv_path: str) -> tuple[list[str], list[tuple[int, dict]]]:
    """Header and (line, row) pairs; a row with more fields than the header keeps the extras under None."""
    try:
        with open(csv_path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise JobsFileError(f"cannot read the jobs file {csv_path}: {exc.strerror or exc}") from None
    records = [(line, fields) for line, fields in read_records(decode(data, csv_path), csv_path) if any(f.strip() for f in fields)]
    if not records:
        raise JobsFileError(f"{csv_path} is empty; expected a header line face,prompt[,...] and one line per video")
    (_, header), body = records[0], records[1:]
    rows = []
    for line, fields in body:
        row = dict(zip(header, fields))
        if len(fields) > len(header):
            row[None] = fields[len(header):]
        rows.append((line, row))
    return header, rows


def _parse_seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        number = float(text)  # "7.0" from spreadsheets; ValueError for words
        if not number.is_integer():
            raise ValueError(text) from None
        value = int(number)
    return normalise_seed(value)


def load_jobs(csv_path: str) -> list[Job]:
    """Read the jobs CSV; face paths are relative to the CSV's folder. Row problems are kept on the job,
    prefixed with the row and line number; problems of the whole file raise JobsFileError."""
    fields, rows = _read_rows(csv_path)
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
    if not rows:
        raise JobsFileError(f"{csv_path} has a header but no jobs; add one line per video under it")
    override_columns = [c for c in fields if c and c not in columns.values()]
    base = os.path.dirname(os.path.abspath(csv_path))
    jobs: list[Job] = []
    for number, (line, row) in enumerate(rows, start=1):
        face = (row.get(columns["face"]) or "").strip()
        job = Job(
            name=(row.get(columns.get("job", ""), "") or "").strip() or f"job-{number:03d}",
            key="",
            row=number,
            line=line,
            face=os.path.normpath(os.path.join(base, face)) if face else "",
            prompt=(row.get(columns["prompt"]) or "").strip(),
        )
        problems = []
        if None in row:
            problems.append(
                f"{len(fields) + len(row[None])} fields but the header has {len(fields)} (a comma in the prompt? "
                "put the prompt in double quotes)"
            )
        if "negative_prompt" in columns:
            job.negative_prompt = (row.get(columns["negative_prompt"]) or "").strip()
        seed_text = (row.get(columns.get("seed", ""), "") or "").strip()
        if seed_text:
            try:
                job.seed = _parse_seed(seed_text)
            except ValueError:
                problems.append(f"seed '{seed_text}' is not a whole number")
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
        elif not os.path.exists(job.face):
            problems.append(f"face image not found: {job.face}")
        else:
            problem = image_problem(job.face)
            if problem:
                problems.append(f"face: {problem}")
        if not job.prompt:
            problems.append("empty prompt")
        job.error = f"{job.where}: " + "; ".join(problems) if problems else None
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
    assign_output_names(jobs)
    return jobs


def assign_output_names(jobs: list[Job]) -> None:
    """A file-name stem per job, unique even when names differ only in characters the sanitiser replaces
    (`a/b` and `a_b`) or in letter case (one file on Windows/macOS): later ones get `-2`, `-3`..."""
    from .workflow import safe_name

    taken: set[str] = set()
    for job in jobs:
        stem = safe_name(job.name)
        candidate, count = stem, 1
        while candidate.casefold() in taken:
            count += 1
            candidate = f"{stem}-{count}"
        taken.add(candidate.casefold())
        job.output_name = candidate


def job_settings(job: Job, workflow_digest: str = "") -> dict:
    """What a job's video depends on; a named job whose settings changed since its video is rendered again."""
    return {
        "face": os.path.normcase(job.face), "face_sha256": file_digest(job.face) if os.path.isfile(job.face) else None,
        "prompt": job.prompt, "negative_prompt": job.negative_prompt, "seed": job.seed,
        "overrides": dict(sorted(job.overrides.items())), "workflow_sha256": workflow_digest,
    }


def file_digest(path: str) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
