"""Run a batch: plan the rerun from the journal, start one worker per server, record every job exactly once."""

from __future__ import annotations

import hashlib
import json
import queue
import threading

from .. import validate
from ..errors import UnsupportedInputError
from .jobs import Job, job_settings
from .journal import ResultsLog, now, plan_resume, settings_digest
from .options import ERROR, FAILED, OK, BatchOptions, BatchSummary
from .progress import ProgressDisplay
from .server_url import redact
from .worker import Worker


def check_options(options: BatchOptions) -> None:
    """Refuse bad servers, timeouts and an --out that is a file before anything runs."""
    if not options.servers:
        raise UnsupportedInputError("no server given; pass --server http://127.0.0.1:8188")
    checked = []
    for server in options.servers:
        try:
            checked.append(validate.check_server_url(server))
        except UnsupportedInputError:  # say it again without the password the URL may carry
            raise UnsupportedInputError(f"--server {redact(server)!r} is not a server address; give an http(s) URL "
                                        "like http://127.0.0.1:8188") from None
    options.servers = checked
    for name in ("timeout", "request_timeout", "probe_timeout", "poll_interval", "reconnect_window"):
        validate.check_positive_seconds(getattr(options, name), name.replace("_", " "))
    validate.check_output_folder(options.out_dir)


def display_names(servers: list[str]) -> list[str]:
    """Each server's URL without credentials; servers that differ only in them get #2, #3... to stay apart."""
    names: list[str] = []
    for server in servers:
        name, count = redact(server), 1
        while name in names:
            count += 1
            name = f"{redact(server)}#{count}"
        names.append(name)
    return names


def run_batch(jobs: list[Job], options: BatchOptions) -> BatchSummary:
    """Run every job not finished before with the same settings; results go to <out_dir>/results.jsonl as
    they complete, one line per job run."""
    check_options(options)
    log = ResultsLog(options.out_dir)
    workflow_digest = hashlib.sha256(json.dumps(options.workflow, sort_keys=True).encode()).hexdigest()[:16]
    settings = {job.key: job_settings(job, workflow_digest) for job in jobs}
    digests = {key: settings_digest(value) for key, value in settings.items()}
    shown = display_names(options.servers)  # the names printed and journaled: no credentials
    plan = plan_resume(jobs, log, shown, options.retry_failed, settings)
    summary = BatchSummary(results_path=log.path, skipped=plan.skipped, earlier_failures=plan.earlier_failures,
                           rerendered=len(plan.rerender))
    display = ProgressDisplay(len(jobs), summary.skipped, shown, options.progress)
    for job, changed in plan.rerender:
        display.write(f"{job.name}: {', '.join(changed)} changed since its earlier run: rendering it again")
    lock = threading.Lock()

    def finish(job: Job, server: str, result: dict, quiet: bool = False) -> None:
        record = {
            "job": job.name, "key": job.key, "status": result["status"], "output": result.get("output"),
            "seconds": result.get("seconds", 0.0), "error": result.get("error"), "face": job.face,
            "server": server, "prompt_id": result.get("prompt_id"), "time": now(),
            "output_name": job.output_name, "settings_digest": digests[job.key], "settings": settings[job.key],
        }
        if len(result.get("outputs") or []) > 1:
            record["outputs"] = result["outputs"]
        if result.get("teacache"):  # steps the sampler computed / skipped with TeaCache
            record["teacache"] = result["teacache"]
        log.write(record)
        with lock:
            summary.records.append(record)
            if record["status"] == OK:
                summary.ok += 1
            elif record["status"] == FAILED:
                summary.failed += 1
            else:
                summary.errors += 1
        display.job_done()
        if record["status"] != OK and not quiet:
            display.write(f"{job.name}: {record['status']}: {record['error']}")

    work: "queue.Queue[Job]" = queue.Queue()
    for job in plan.run:
        if job.error:  # row problems are known before any server is involved
            finish(job, "-", {"status": FAILED, "error": job.error, "seconds": 0.0})
        else:
            work.put(job)
    workers = [Worker(s, options, work, plan.resume[n], log, display, finish, digests, name=n)
               for s, n in zip(options.servers, shown)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            while worker.is_alive():
                worker.join(0.5)
    finally:
        display.close()
    left = []
    while True:  # every server gave up: record what is left so a rerun picks it up
        try:
            left.append(work.get_nowait())
        except queue.Empty:
            break
    for job in left:  # one journal line each, one console line for all of them
        why = f"last error: {job.last_error}" if job.last_error else "unreachable or not answering"
        finish(job, "-", {"status": ERROR, "error": f"no server could run this job ({why}); run the batch again "
                                                    "to retry it", "seconds": 0.0}, quiet=True)
    if left:
        print(f"{len(left)} job(s) not run: every server was given up on (see the line per server above); run the "
              "batch again to retry them", flush=True)
    return summary
