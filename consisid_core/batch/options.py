"""Settings and counts of a batch run, and the status words results.jsonl uses."""

from __future__ import annotations

from dataclasses import dataclass, field

OK, FAILED, ERROR = "ok", "failed", "error"  # failed: ComfyUI or the job said no; error: transport, retried
MAX_ATTEMPTS = 3  # runs of one job in a batch when the transport fails
RETIRE_AFTER = 3  # consecutive transport errors before a server is given up for this run


@dataclass
class BatchOptions:
    """What `run_batch` needs."""

    servers: list[str]
    workflow: dict
    out_dir: str
    timeout: float = 3600.0  # seconds one job may take, from submission to its video
    retry_failed: bool = False
    progress: bool = True
    reconnect_window: float = 60.0  # how long a server may stay unreachable while a job of it is running
    poll_interval: float = 2.0
    request_timeout: float = 30.0  # one HTTP request (a server that accepts and never answers is given up on)
    probe_timeout: float = 10.0  # the first contact with each server


@dataclass
class BatchSummary:
    """Counts of a run."""

    ok: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    earlier_failures: int = 0  # skipped because they failed in an earlier run (see --retry-failed)
    rerendered: int = 0  # named jobs whose settings changed since their earlier video
    results_path: str = ""
    records: list[dict] = field(default_factory=list)
