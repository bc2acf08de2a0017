"""Batch client against misbehaving servers and changed jobs: a server that never answers, websocket frames
split across reads, named jobs edited between runs, output names that collide, files that are not photos."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from consisid_core.batch import BatchOptions, load_jobs, run_batch
from consisid_core.batch.websocket import WebSocket
from support.fake_comfy import FakeComfy, api_workflow, faces, results, server, write_jobs  # noqa: F401 (fixtures)


def _options(servers, out_dir, **kw) -> BatchOptions:
    settings = dict(timeout=60, poll_interval=0.2, reconnect_window=2, progress=False)
    settings.update(kw)
    return BatchOptions(servers=servers, workflow=api_workflow(), out_dir=str(out_dir), **settings)


def _run_bounded(jobs, options, limit: float) -> tuple[object, float]:
    """run_batch in a thread: fails the test (instead of hanging it) when it takes longer than `limit`."""
    box = {}
    started = time.monotonic()
    thread = threading.Thread(target=lambda: box.update(summary=run_batch(jobs, options)), daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"the batch did not give up within {limit} s"
    return box["summary"], time.monotonic() - started


# ---------------------------------------------------------------- servers that never answer


def test_a_server_that_accepts_connections_and_never_answers_is_given_up_on(tmp_path, faces):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # the kernel completes connections; nobody ever reads or answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", [f"faces/astronaut.png,prompt {i},,{i},2" for i in range(3)]))
        summary, seconds = _run_bounded(jobs, _options([url], tmp_path / "out", probe_timeout=0.5, request_timeout=0.5), 30)
    finally:
        silent.close()
    assert seconds < 10
    records = results(tmp_path / "out")
    assert summary.errors == 3 and len(records) == 3, records
    assert all(r["status"] == "error" and "no server could run this job" in r["error"] for r in records)


class _HangingAfterProbe(BaseHTTPRequestHandler):
    """Answers GET /queue (so it looks alive), then never answers anything else."""

    release = threading.Event()

    def do_GET(self):  # noqa: N802
        if self.path.startswith("/queue"):
            body = b'{"queue_running": [], "queue_pending": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.release.wait(30)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


def test_a_server_that_stops_answering_costs_a_bounded_time_and_every_job_is_recorded(tmp_path, faces):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HangingAfterProbe)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", [f"faces/astronaut.png,prompt {i},,{i},2" for i in range(10)]))
        summary, seconds = _run_bounded(jobs, _options([url], tmp_path / "out", probe_timeout=0.5, request_timeout=0.5), 90)
    finally:
        _HangingAfterProbe.release.set()
        httpd.shutdown()
        httpd.server_close()
    records = results(tmp_path / "out")
    assert len(records) == 10 and summary.errors == 10, records
    assert seconds < 8, f"{seconds:.1f} s: 3 timeouts then the server is given up on; not 3 x timeout per job"


# ---------------------------------------------------------------- websocket frames split across reads


def test_websocket_frame_split_by_a_pause_is_read_whole():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    first = json.dumps({"type": "progress", "data": {"value": 1, "max": 2}}).encode()
    second = json.dumps({"type": "execution_success", "data": {}}).encode()

    def serve():
        conn, _ = listener.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        key = next(h.split(b":", 1)[1].strip() for h in request.split(b"\r\n") if h.lower().startswith(b"sec-websocket-key"))
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        conn.sendall(bytes([0x81, len(first)]))  # the header arrives ...
        time.sleep(1.5)  # ... the payload only after the reader's 1 s timeout
        conn.sendall(first + bytes([0x81, len(second)]) + second)
        time.sleep(1)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ws = WebSocket(f"ws://127.0.0.1:{listener.getsockname()[1]}/ws", timeout=5)
    ws.settimeout(1.0)
    received = []
    deadline = time.monotonic() + 10
    while len(received) < 2 and time.monotonic() < deadline:
        try:
            received.append(ws.recv_json())
        except socket.timeout:
            continue
    ws.close()
    listener.close()
    assert received == [json.loads(first), json.loads(second)]


# ---------------------------------------------------------------- resume, names, non-image faces


def test_a_named_job_whose_settings_changed_is_rendered_again(tmp_path, faces, server):
    csv_path = tmp_path / "jobs.csv"
    header = "face,prompt,job,steps"

    def run(prompt: str, steps: int = 2):
        write_jobs(csv_path, [f"faces/astronaut.png,{prompt},hero,{steps}", "faces/astronaut.png,a crowd,extras,2"], header)
        return run_batch(load_jobs(str(csv_path)), _options([server.url], tmp_path / "out"))

    first = run("a man on the moon")
    assert first.ok == 2 and len(server.prompts) == 2
    again = run("a man on the moon")
    assert again.skipped == 2 and again.rerendered == 0 and len(server.prompts) == 2, "nothing changed: nothing runs"
    edited = run("a man on mars")
    assert edited.ok == 1 and edited.skipped == 1 and edited.rerendered == 1 and len(server.prompts) == 3
    hero = [r for r in results(tmp_path / "out") if r["job"] == "hero"]
    assert hero[-1]["settings"]["prompt"] == "a man on mars" and hero[-1]["settings_digest"] != hero[0]["settings_digest"]
    with open(hero[-1]["output"], "rb") as handle:
        assert handle.read() == b"MP4|a man on mars|42|2"
    more_steps = run("a man on mars", steps=3)
    assert more_steps.rerendered == 1 and len(server.prompts) == 4, "an override change counts too"
    (faces / "astronaut.png").write_bytes((faces / "astronaut_flipped.png").read_bytes())
    new_face = run("a man on mars", steps=3)
    assert new_face.rerendered == 2 and len(server.prompts) == 6, "a changed photo (same file name) counts too"


def test_jobs_whose_names_sanitise_alike_write_separate_files(tmp_path, faces, server):
    rows = [f"faces/astronaut.png,prompt {name},{name},2" for name in ("a/b", "a_b", "A:B")]
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", rows, "face,prompt,job,steps"))
    summary = run_batch(jobs, _options([server.url], tmp_path / "out"))
    assert summary.ok == 3
    records = {r["job"]: r for r in results(tmp_path / "out")}
    assert [records[n]["output_name"] for n in ("a/b", "a_b", "A:B")] == ["a_b", "a_b-2", "A_B-3"]
    outputs = [records[n]["output"] for n in ("a/b", "a_b", "A:B")]
    assert len({os.path.normcase(p).lower() for p in outputs}) == 3
    for name, path in zip(("a/b", "a_b", "A:B"), outputs):
        with open(path, "rb") as handle:
            assert handle.read() == f"MP4|prompt {name}|42|2".encode(), "one video overwrote another"


def test_a_face_that_is_not_an_image_is_never_uploaded(tmp_path, faces, server):
    rows = [f"{sys.executable},a system file,,1,2", "faces/astronaut.png,a real face,,2,2"]
    summary = run_batch(load_jobs(write_jobs(tmp_path / "jobs.csv", rows)), _options([server.url], tmp_path / "out"))
    assert (summary.ok, summary.failed) == (1, 1)
    failed = next(r for r in results(tmp_path / "out") if r["status"] == "failed")
    assert failed["error"].startswith("row 1 (line 2): face: ") and "is not an image PIL can read" in failed["error"]
    assert server.upload_count == 1 and len(server.prompts) == 1


@pytest.mark.parametrize("bad", ["not a url", "ftp://host/", "http://"])
def test_run_batch_refuses_bad_server_urls_before_any_thread(tmp_path, faces, bad):
    from consisid_core.errors import ConsisIDError

    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", ["faces/astronaut.png,a man,,1,2"]))
    with pytest.raises(ConsisIDError, match="is not a server address"):
        run_batch(jobs, _options([bad], tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_an_unexpected_error_in_a_worker_costs_the_job_not_the_journal(tmp_path, faces, server, monkeypatch):
    """A bug while preparing a job must not kill the worker thread and lose the job in flight."""
    from consisid_core.batch import workflow as wf

    def broken(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(wf, "apply_job", broken)
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", [f"faces/astronaut.png,prompt {i},,{i},2" for i in range(2)]))
    summary, _ = _run_bounded(jobs, _options([server.url], tmp_path / "out"), 60)
    records = results(tmp_path / "out")
    assert summary.errors == 2 and sorted(r["job"] for r in records) == ["job-001", "job-002"], records
    assert all("unexpected KeyError: 'surprise'" in r["error"] for r in records), records
