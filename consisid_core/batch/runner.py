"""Run many jobs through one or more ComfyUI servers: one job in flight per server, resumable, failure-tolerant."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import workflow as wf
from .client import ComfyClient, PromptRejected, ServerError
from .jobs import Job
from .websocket import WebSocket, WebSocketError

RESULTS_FILE = "results.jsonl"
SUBMITTED_FILE = ".submitted.jsonl"
OK, FAILED, ERROR = "ok", "failed", "error"  # failed: ComfyUI or the job said no; error: transport, retried
MAX_ATTEMPTS = 3
RETIRE_AFTER = 3  # consecutive transport errors before a server is given up for this run


class LostPrompt(Exception):
    """The server no longer knows a submitted prompt (it restarted): submit again."""


@dataclass
class BatchOptions:
    """What `run_batch` needs."""

    servers: list[str]
    workflow: dict
    out_dir: str
    timeout: float = 3600.0
    retry_failed: bool = False
    progress: bool = True
    reconnect_window: float = 60.0
    poll_interval: float = 2.0


@dataclass
class BatchSummary:
    """Counts of a run."""

    ok: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    earlier_failures: int = 0  # skipped because they failed in an earlier run (see --retry-failed)
    results_path: str = ""
    records: list[dict] = field(default_factory=list)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


class ResultsLog:
    """results.jsonl (one final line per job run) and .submitted.jsonl (prompt ids in flight), both append-only."""

    def __init__(self, out_dir: str):
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, RESULTS_FILE)
        self.submitted_path = os.path.join(out_dir, SUBMITTED_FILE)
        self._lock = threading.Lock()

    @staticmethod
    def _read(path: str) -> list[dict]:
        records = []
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        continue  # a line cut by a kill: ignore it
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

    def submitted(self, job: Job, server: str, prompt_id: str) -> None:
        self._append(self.submitted_path, {"key": job.key, "job": job.name, "server": server, "prompt_id": prompt_id, "time": _now()})


class _Bars:
    """tqdm bars: overall on top, one per server below (no-ops when progress is off)."""

    def __init__(self, total: int, done: int, servers: list[str], enabled: bool):
        self.enabled = enabled
        self._lock = threading.Lock()
        if not enabled:
            return
        from tqdm import tqdm

        self._tqdm = tqdm
        self.overall = tqdm(total=total, initial=done, desc="batch", unit="job", position=0, dynamic_ncols=True)
        self.per_server = {
            s: tqdm(total=1, desc=s, unit="step", position=i + 1, leave=False, dynamic_ncols=True) for i, s in enumerate(servers)
        }

    def job_started(self, server: str, name: str) -> None:
        if self.enabled:
            with self._lock:
                bar = self.per_server[server]
                bar.reset(total=1)
                bar.set_description(f"{name} @ {server}")

    def step(self, server: str, value: int, maximum: int, node: str | None) -> None:
        if self.enabled and maximum:
            with self._lock:
                bar = self.per_server[server]
                if bar.total != maximum:
                    bar.reset(total=maximum)
                bar.n = min(value, maximum)
                bar.set_postfix_str(f"node {node}" if node else "", refresh=False)
                bar.refresh()

    def job_done(self) -> None:
        if self.enabled:
            with self._lock:
                self.overall.update(1)

    def write(self, text: str) -> None:
        if self.enabled:
            self._tqdm.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.enabled:
            for bar in self.per_server.values():
                bar.close()
            self.overall.close()


class _Worker(threading.Thread):
    """Runs jobs on one server, one at a time, until the queue is empty or the server keeps failing."""

    def __init__(self, server: str, options: BatchOptions, jobs: "queue.Queue[Job]", resume: list[tuple[Job, str]],
                 log: ResultsLog, bars: _Bars, finish, alive_count):
        super().__init__(name=f"consisid-batch-{server}", daemon=True)
        self.server = server
        self.client = ComfyClient(server)
        self.options = options
        self.jobs = jobs
        self.resume = resume
        self.log = log
        self.bars = bars
        self.finish = finish
        self.alive_count = alive_count
        self.client_id = uuid.uuid4().hex
        self.uploaded: dict[str, str] = {}  # face content hash -> name on this server
        self.ws: WebSocket | None = None
        self.retired = False

    # -------------------------------------------------------------- plumbing

    def _socket(self) -> WebSocket | None:
        if self.ws is None or self.ws.closed:
            try:
                self.ws = WebSocket(f"{self.client.ws_url}?clientId={self.client_id}", timeout=10)
            except (WebSocketError, OSError):
                self.ws = None  # no websocket: fall back on polling /history
        return self.ws

    def _upload(self, face: str) -> str:
        digest = _digest(face)
        if digest not in self.uploaded:
            self.uploaded[digest] = self.client.upload_image(face, wf.face_upload_name(face, digest))
        return self.uploaded[digest]

    def _wait(self, prompt_id: str, job: Job, deadline: float) -> dict:
        """Follow progress over the websocket until the prompt ends; returns its history entry."""
        next_poll = time.monotonic() + self.options.poll_interval
        outage_since = None
        while True:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"no result after {self.options.timeout:.0f} s")
            ws = self._socket()
            finished = False
            if ws is not None:
                ws.settimeout(min(1.0, self.options.poll_interval))
                try:
                    message = ws.recv_json()
                except socket.timeout:
                    message = None
                except (WebSocketError, OSError, ValueError):
                    self.ws, message = None, None
                if message:
                    data = message.get("data") or {}
                    kind = message.get("type")
                    if data.get("prompt_id") == prompt_id:
                        if kind == "progress":
                            self.bars.step(self.server, int(data.get("value", 0)), int(data.get("max", 0)), data.get("node"))
                        elif kind in ("execution_success", "execution_error", "execution_interrupted"):
                            finished = True
                        elif kind == "executing" and data.get("node") is None:
                            finished = True
            else:
                time.sleep(min(1.0, self.options.poll_interval))
            if finished or time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self.options.poll_interval
                try:
                    entry = self.client.history(prompt_id)
                    if entry is not None and (entry.get("status") or {}).get("completed") is not None:
                        return entry
                    if entry is None and not finished and prompt_id not in self.client.queued_prompt_ids():
                        # neither finished nor queued: the history may lag the messages by a moment, ask once more
                        time.sleep(0.2)
                        if self.client.history(prompt_id) is None and prompt_id not in self.client.queued_prompt_ids():
                            raise LostPrompt(f"{self.server} no longer knows prompt {prompt_id}")
                    outage_since = None
                except ServerError:
                    outage_since = outage_since or time.monotonic()
                    if time.monotonic() - outage_since > self.options.reconnect_window:
                        raise

    # -------------------------------------------------------------- one job

    def _finalize(self, job: Job, entry: dict) -> dict:
        problem = wf.error_message(entry)
        if problem:
            return {"status": FAILED, "error": problem}
        files = wf.output_files(entry)
        if not files:
            return {"status": FAILED, "error": "the workflow finished but produced no output file (no save/video node?)"}
        wanted = [f for f in files if f["video"]] or [f for f in files if f["type"] == "output"] or files
        saved = []
        for index, item in enumerate(wanted):
            ext = os.path.splitext(item["filename"])[1]
            suffix = "" if index == 0 else f"_{index}"
            destination = os.path.join(self.options.out_dir, f"{wf.safe_name(job.name)}{suffix}{ext}")
            self.client.download(item["filename"], item["subfolder"], item["type"], destination)
            saved.append(destination)
        return {"status": OK, "output": saved[0], "outputs": saved}

    def run_job(self, job: Job, prompt_id: str | None = None) -> dict:
        """Submit (unless resuming a known prompt id), wait, download. Returns the result fields."""
        started = time.monotonic()
        deadline = started + self.options.timeout
        self.bars.job_started(self.server, job.name)
        try:
            if prompt_id is None:
                face_name = self._upload(job.face)
                patched = wf.apply_job(
                    self.options.workflow, face_name, job.prompt, job.negative_prompt, job.seed, job.overrides,
                    output_prefix=f"consisid_batch/{wf.safe_name(job.name)}",
                )
                self._socket()  # listen before submitting so no progress message is missed
                prompt_id = self.client.queue_prompt(patched, self.client_id)
                self.log.submitted(job, self.server, prompt_id)
            entry = self._wait(prompt_id, job, deadline)
            result = self._finalize(job, entry)
        except wf.WorkflowError as exc:
            result = {"status": FAILED, "error": str(exc)}
        except PromptRejected as exc:
            result = {"status": FAILED, "error": f"rejected by ComfyUI: {exc}"}
        except TimeoutError as exc:
            result = {"status": FAILED, "error": str(exc)}
        except LostPrompt as exc:
            self.uploaded.clear()  # the server restarted: its input folder may have lost our faces too
            result = {"status": ERROR, "error": str(exc)}
        except (ServerError, WebSocketError, OSError) as exc:
            self.uploaded.clear()
            result = {"status": ERROR, "error": f"server problem: {exc}"}
        result.update(seconds=round(time.monotonic() - started, 2), prompt_id=prompt_id)
        return result

    # -------------------------------------------------------------- loop

    def run(self) -> None:
        failures = 0
        try:
            pending = list(self.resume)
            while True:
                if pending:
                    job, prompt_id = pending.pop(0)
                else:
                    try:
                        job, prompt_id = self.jobs.get_nowait(), None
                    except queue.Empty:
                        return
                job.attempts += 1
                result = self.run_job(job, prompt_id)
                if result["status"] == ERROR:
                    failures += 1
                    if job.attempts < MAX_ATTEMPTS:
                        self.bars.write(f"{job.name}: {result['error']} (will retry)")
                        self.jobs.put(job)
                        if failures >= RETIRE_AFTER and self.alive_count() > 1:
                            self.bars.write(f"{self.server}: {failures} failures in a row, leaving the other jobs to the other servers")
                            return
                        if failures >= RETIRE_AFTER:
                            time.sleep(min(10.0, self.options.poll_interval * failures))
                        continue
                else:
                    failures = 0
                self.finish(job, self.server, result)
        finally:
            self.retired = True
            if self.ws is not None:
                self.ws.close()


def run_batch(jobs: list[Job], options: BatchOptions) -> BatchSummary:
    """Run every job not finished before; results go to <out_dir>/results.jsonl as they complete."""
    os.makedirs(options.out_dir, exist_ok=True)
    log = ResultsLog(options.out_dir)
    finals = log.finals()
    submissions = log.submissions()
    summary = BatchSummary(results_path=log.path)
    todo: list[Job] = []
    for job in jobs:
        previous = finals.get(job.key)
        if previous and previous.get("status") == OK and previous.get("output") and os.path.isfile(previous["output"]):
            summary.skipped += 1
        elif previous and previous.get("status") == FAILED and not options.retry_failed:
            summary.skipped += 1
            summary.earlier_failures += 1
        else:
            todo.append(job)

    bars = _Bars(len(jobs), summary.skipped, options.servers, options.progress)
    lock = threading.Lock()

    def finish(job: Job, server: str, result: dict) -> None:
        record = {
            "job": job.name, "key": job.key, "status": result["status"], "output": result.get("output"),
            "seconds": result.get("seconds", 0.0), "error": result.get("error"), "face": job.face,
            "server": server, "prompt_id": result.get("prompt_id"), "time": _now(),
        }
        if len(result.get("outputs") or []) > 1:
            record["outputs"] = result["outputs"]
        log.write(record)
        with lock:
            summary.records.append(record)
            if record["status"] == OK:
                summary.ok += 1
            elif record["status"] == FAILED:
                summary.failed += 1
            else:
                summary.errors += 1
        bars.job_done()
        if record["status"] != OK:
            bars.write(f"{job.name}: {record['status']}: {record['error']}")

    work: "queue.Queue[Job]" = queue.Queue()
    resume: dict[str, list[tuple[Job, str]]] = {s: [] for s in options.servers}
    for job in todo:
        if job.error:  # row problems are known before any server is involved
            finish(job, "-", {"status": FAILED, "error": job.error, "seconds": 0.0})
            continue
        sub = submissions.get(job.key)
        previous = finals.get(job.key)
        newer = sub and (not previous or sub.get("time", "") >= previous.get("time", ""))
        if newer and sub.get("server") in resume:
            resume[sub["server"]].append((job, sub["prompt_id"]))
        else:
            work.put(job)

    workers: list[_Worker] = []
    alive = lambda: sum(1 for w in workers if not w.retired)  # noqa: E731
    for server in options.servers:
        workers.append(_Worker(server, options, work, resume[server], log, bars, finish, alive))
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            while worker.is_alive():
                worker.join(0.5)
    finally:
        bars.close()
    while True:  # every server gave up: record what is left so a rerun picks it up
        try:
            job = work.get_nowait()
        except queue.Empty:
            break
        finish(job, "-", {"status": ERROR, "error": "no server could run this job (all unreachable)", "seconds": 0.0})
    return summary
