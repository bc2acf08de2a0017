"""One worker thread per server: upload, submit, follow progress, download; transport errors are retried and
a server that keeps failing (or never answers) is given up on after a bounded time."""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
import uuid
from typing import Callable

from . import workflow as wf
from .client import ComfyClient, PromptRejected, ServerError
from .jobs import Job, file_digest
from .journal import ResultsLog
from .options import ERROR, FAILED, MAX_ATTEMPTS, OK, RETIRE_AFTER, BatchOptions
from .progress import ProgressDisplay
from .server_url import redact
from .teacache_override import teacache_stats
from .websocket import WebSocket, WebSocketError


class LostPrompt(Exception):
    """The server no longer knows a submitted prompt (it restarted): submit again."""


class Worker(threading.Thread):
    """Runs jobs on one server, one at a time, until the queue is empty or the server is given up on."""

    def __init__(self, server: str, options: BatchOptions, jobs: "queue.Queue[Job]", resume: list[tuple[Job, str]],
                 log: ResultsLog, display: ProgressDisplay, finish: Callable[[Job, str, dict], None],
                 digests: dict[str, str] | None = None, name: str | None = None):
        self.server = name or redact(server)  # what is shown and logged: never the password
        super().__init__(name=f"consisid-batch-{self.server}", daemon=True)
        self.client = ComfyClient(server, timeout=options.request_timeout)
        self.options = options
        self.jobs = jobs
        self.resume = resume
        self.log = log
        self.display = display
        self.finish = finish
        self.digests = digests or {}
        self.client_id = uuid.uuid4().hex
        self.uploaded: dict[str, str] = {}  # face content hash -> name on this server
        self.ws: WebSocket | None = None
        self.retired = False

    # -------------------------------------------------------------- plumbing

    def _socket(self) -> WebSocket | None:
        if self.ws is None or self.ws.closed:
            try:
                self.ws = WebSocket(f"{self.client.ws_url}?clientId={self.client_id}", timeout=self.options.probe_timeout,
                                    headers=self.client.auth_headers)
            except (WebSocketError, OSError):
                self.ws = None  # no websocket: fall back on polling /history
        return self.ws

    def _upload(self, face: str) -> str:
        digest = file_digest(face)
        if digest not in self.uploaded:
            self.uploaded[digest] = self.client.upload_image(face, wf.face_upload_name(face, digest))
        return self.uploaded[digest]

    def _probe(self) -> str | None:
        """None when the server answers GET /queue within the probe timeout, else why not."""
        self.client.timeout = self.options.probe_timeout
        try:
            self.client.queued_prompt_ids()
            return None
        except (ServerError, OSError) as exc:
            return str(exc)
        finally:
            self.client.timeout = self.options.request_timeout

    def _wait(self, prompt_id: str, deadline: float) -> dict:
        """Follow progress over the websocket until the prompt ends; returns its history entry."""
        next_poll = time.monotonic() + self.options.poll_interval
        outage_since = None
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result after {self.options.timeout:g} s (--timeout)")
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
                    finished = self._on_message(message, prompt_id)
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

    def _on_message(self, message: dict, prompt_id: str) -> bool:
        """Show progress; True when the message says the prompt ended."""
        data = message.get("data") or {}
        kind = message.get("type")
        if data.get("prompt_id") != prompt_id:
            return False
        if kind == "progress":
            self.display.step(self.server, int(data.get("value", 0)), int(data.get("max", 0)), data.get("node"))
            return False
        return kind in ("execution_success", "execution_error", "execution_interrupted") or (
            kind == "executing" and data.get("node") is None)

    # -------------------------------------------------------------- one job

    def _finalize(self, job: Job, entry: dict) -> dict:
        problem = wf.error_message(entry)
        if problem:
            return {"status": FAILED, "error": problem}
        files = wf.output_files(entry)
        if not files:
            return {"status": FAILED, "error": "the workflow finished but produced no output file (no save/video node?)"}
        wanted = [f for f in files if f["video"]] or [f for f in files if f["type"] == "output"] or files
        stem = job.output_name or wf.safe_name(job.name)
        saved = []
        for index, item in enumerate(wanted):
            ext = os.path.splitext(item["filename"])[1]
            suffix = "" if index == 0 else f"_{index}"
            destination = os.path.join(self.options.out_dir, f"{stem}{suffix}{ext}")
            self.client.download(item["filename"], item["subfolder"], item["type"], destination)
            saved.append(destination)
        return {"status": OK, "output": saved[0], "outputs": saved, "teacache": teacache_stats(entry)}

    def run_job(self, job: Job, prompt_id: str | None = None) -> dict:
        """Submit (unless resuming a known prompt id), wait, download. Returns the result fields."""
        started = time.monotonic()
        deadline = started + self.options.timeout
        self.display.job_started(self.server, job.name)
        try:
            if prompt_id is None:
                face_name = self._upload(job.face)
                patched = wf.apply_job(
                    self.options.workflow, face_name, job.prompt, job.negative_prompt, job.seed, job.overrides,
                    output_prefix=f"consisid_batch/{job.output_name or wf.safe_name(job.name)}",
                )
                self._socket()  # listen before submitting so no progress message is missed
                prompt_id = self.client.queue_prompt(patched, self.client_id)
                self.log.submitted(job, self.server, prompt_id, self.digests.get(job.key, ""))
            entry = self._wait(prompt_id, deadline)
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
        except Exception as exc:  # noqa: BLE001 - a bug must cost one job, never the worker and its journal line
            result = {"status": ERROR, "error": f"unexpected {type(exc).__name__}: {exc}"}
        result.update(seconds=round(time.monotonic() - started, 2), prompt_id=prompt_id)
        return result

    # -------------------------------------------------------------- loop

    def _give_up(self, why: str, pending: list[tuple[Job, str | None]]) -> None:
        """Leave this server: jobs it held go back to the queue (other servers, or recorded by the scheduler)."""
        self.display.write(f"{self.server}: {why}; giving up on this server for this run")
        for job, _ in pending:
            self.jobs.put(job)

    def run(self) -> None:
        failures = 0
        pending: list[tuple[Job, str | None]] = list(self.resume)
        try:
            problem = self._probe()
            if problem:
                self._give_up(f"not answering ({problem})", pending)
                return
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
                    job.last_error = result["error"]
                    if job.attempts < MAX_ATTEMPTS:
                        self.jobs.put(job)
                        if failures >= RETIRE_AFTER:
                            self._give_up(f"{failures} transport errors in a row (last: {result['error']})", pending)
                            return
                        self.display.write(f"{job.name}: {result['error']} (will retry)")
                        time.sleep(min(10.0, self.options.poll_interval * failures))
                        continue
                else:
                    failures = 0
                self.finish(job, self.server, result)
                if failures >= RETIRE_AFTER:
                    self._give_up(f"{failures} transport errors in a row", pending)
                    return
        finally:
            self.retired = True
            if self.ws is not None:
                self.ws.close()
