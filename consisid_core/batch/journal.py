"""The batch journal: results.jsonl (one final line per job run), .submitted.jsonl (prompt ids in flight), and
what a rerun does with each job (skip, resume its prompt, run, or run again because its settings changed)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .jobs import Job
from .options import FAILED, OK

RESULTS_FILE = "results.jsonl"
SUBMITTED_FILE = ".submitted.jsonl"


def now() -> str:
    """UTC time stamp of journal lines."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def settings_digest(settings: dict) -> str:
    """A short stable hash of a job's settings (see jobs.job_settings)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


class ResultsLog:
    """results.jsonl and .submitted.jsonl in the output folder, both append-only and fsynced per line."""

    def __init__(self, out_dir: str):
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, RESULTS_FILE)
        self.submitted_path = os.path.join(out_dir, SUBMITTED_FILE)
        self._lock = threading.Lock()

    @staticmethod
    def _read(path: str) -> list[dict]:
        records = []
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a kill: ignore it
                    if isinstance(record, dict):
                        records.append(record)
        return records

    def finals(self) -> dict[str, dict]:
        """The last final record per job key."""
        return {r["key"]: r for r in self._read(self.path) if "key" in r}

    def submissions(self) -> dict[str, dict]:
        """The last submission per job key."""
        return {r["key"]: r for r in self._read(self.submitted_path) if "key" in r}

    def _append(self, path: str, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock, open(path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def write(self, record: dict) -> None:
        self._append(self.path, record)

    def submitted(self, job: Job, server: str, prompt_id: str, digest: str = "") -> None:
        self._append(self.submitted_path, {"key": job.key, "job": job.name, "server": server, "prompt_id": prompt_id,
                                           "settings_digest": digest, "time": now()})


@dataclass
class ResumePlan:
    """What to do with each job of a rerun."""

    run: list[Job] = field(default_factory=list)  # to submit (row errors included: recorded without running)
    resume: dict[str, list[tuple[Job, str]]] = field(default_factory=dict)  # server -> (job, prompt id in flight)
    skipped: int = 0
    earlier_failures: int = 0
    rerender: list[tuple[Job, list[str]]] = field(default_factory=list)  # (job, changed setting names)


def _changed(previous: dict, settings: dict) -> list[str]:
    old = previous.get("settings")
    if not isinstance(old, dict):
        return ["settings"]
    return [k for k in settings if old.get(k) != settings[k]] or ["settings"]


def plan_resume(jobs: list[Job], log: ResultsLog, servers: list[str], retry_failed: bool,
                settings: dict[str, dict]) -> ResumePlan:
    """Skip jobs finished before with the same settings; resume prompts still in flight; run the rest."""
    finals, submissions = log.finals(), log.submissions()
    plan = ResumePlan(resume={s: [] for s in servers})
    for job in jobs:
        digest = settings_digest(settings[job.key])
        previous = finals.get(job.key)
        same = previous is None or previous.get("settings_digest") in (None, digest)  # journals of older versions: same
        if previous and not same:
            plan.rerender.append((job, _changed(previous, settings[job.key])))
        elif previous and previous.get("status") == OK and previous.get("output") and os.path.isfile(previous["output"]):
            plan.skipped += 1
            continue
        elif previous and previous.get("status") == FAILED and not retry_failed:
            plan.skipped += 1
            plan.earlier_failures += 1
            continue
        sub = submissions.get(job.key)
        newer = sub and (not previous or sub.get("time", "") >= previous.get("time", ""))
        if (not job.error and newer and sub.get("server") in plan.resume
                and sub.get("settings_digest") in (None, "", digest)):
            plan.resume[sub["server"]].append((job, sub["prompt_id"]))
        else:
            plan.run.append(job)
    return plan
