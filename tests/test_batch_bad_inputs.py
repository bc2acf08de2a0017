"""Batch client, bad inputs said clearly: an over-long CSV field, a password in the server URL, a dead server
with many jobs. Model-free and fast (loopback servers only)."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from consisid_core.batch import BatchOptions, load_jobs, run_batch
from consisid_core.batch.client import ComfyClient
from consisid_core.batch.csv_text import FIELD_LIMIT, JobsFileError
from consisid_core.batch.server_url import redact, split_credentials
from consisid_core.cli import main
from support.fake_comfy import api_workflow, faces, results, server, write_jobs  # noqa: F401 (fixtures)

SECRET = "s3cr3t-Pa55"


def _dead_url() -> str:
    """A loopback port nobody listens on (connections are refused at once)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------- a prompt longer than a CSV field may be


def test_a_prompt_over_the_old_csv_limit_is_read(tmp_path, faces):
    long_prompt = "x" * 200_000  # Python's csv refuses fields over 131072 characters by default
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", [f"faces/astronaut.png,{long_prompt},,1,2"]))
    assert jobs[0].prompt == long_prompt


def test_a_field_over_the_limit_names_the_field_size_limit_not_a_quote(tmp_path, faces):
    path = write_jobs(tmp_path / "jobs.csv", ["faces/astronaut.png,short,,1,2", f"faces/astronaut.png,{'y' * (FIELD_LIMIT + 10)},,2,2"])
    with pytest.raises(JobsFileError) as caught:
        load_jobs(path)
    message = str(caught.value)
    assert "line 3" in message and f"longer than {FIELD_LIMIT} characters" in message
    assert "quoted field is not closed" not in message and "\n" not in message


# ---------------------------------------------------------------- credentials in the server URL


def test_redact_and_split_credentials():
    url = f"http://user:{SECRET}@example.org:8188/base"
    assert redact(url) == "http://***@example.org:8188/base"
    assert redact("http://127.0.0.1:8188") == "http://127.0.0.1:8188"
    clean, headers = split_credentials(url)
    assert clean == "http://example.org:8188/base"
    assert base64.b64decode(headers["Authorization"].split()[1]).decode() == f"user:{SECRET}"
    assert split_credentials("http://h:1") == ("http://h:1", {})


class _RecordAuth(BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):  # noqa: N802
        type(self).seen.append(self.headers.get("Authorization"))
        body = b'{"queue_running": [], "queue_pending": []}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_credentials_go_in_a_basic_auth_header(tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RecordAuth)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        client = ComfyClient(f"http://me:{SECRET}@127.0.0.1:{httpd.server_address[1]}", timeout=5)
        assert client.queued_prompt_ids() == set()
    finally:
        httpd.shutdown()
    assert _RecordAuth.seen == ["Basic " + base64.b64encode(f"me:{SECRET}".encode()).decode()]
    assert SECRET not in client.base_url and SECRET not in client.ws_url


def _all_text(out_dir, captured) -> str:
    texts = [captured.out, captured.err]
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        if os.path.isfile(path) and name.endswith((".jsonl", ".json", ".txt")):
            with open(path, encoding="utf-8") as handle:
                texts.append(handle.read())
    return "\n".join(texts)


def test_a_password_in_the_url_is_never_printed_or_journaled_when_the_server_is_down(tmp_path, faces, capsys):
    url = _dead_url().replace("http://", f"http://user:{SECRET}@")
    jobs = write_jobs(tmp_path / "jobs.csv", [f"faces/astronaut.png,prompt {i},,{i},2" for i in range(3)])
    code = main(["batch", "--server", url, "--jobs", jobs, "--out", str(tmp_path / "out"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert SECRET not in _all_text(tmp_path / "out", captured)
    assert "http://***@127.0.0.1" in captured.out  # the server is still named, without the password


def test_a_password_in_a_bad_url_is_not_echoed(tmp_path, faces, capsys):
    jobs = write_jobs(tmp_path / "jobs.csv", ["faces/astronaut.png,a prompt,,1,2"])
    code = main(["batch", "--server", f"http://user:{SECRET}@host:notaport", "--jobs", jobs,
                 "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert SECRET not in captured.err + captured.out and "***@host" in captured.err


def test_a_job_runs_through_a_url_with_credentials_and_nothing_shows_them(tmp_path, faces, server, capsys):
    url = server.url.replace("http://", f"http://user:{SECRET}@")
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", ["faces/astronaut.png,a prompt,,1,2"]))
    options = BatchOptions(servers=[url], workflow=api_workflow(), out_dir=str(tmp_path / "out"), timeout=60,
                           poll_interval=0.2, progress=True)  # the progress bars name the server too
    summary = run_batch(jobs, options)
    assert summary.ok == 1, results(tmp_path / "out")
    assert SECRET not in _all_text(tmp_path / "out", capsys.readouterr())
    assert results(tmp_path / "out")[0]["server"] == redact(url)


# ---------------------------------------------------------------- a dead server and many jobs


def test_a_dead_server_with_many_jobs_says_so_once(tmp_path, faces, capsys):
    count = 300
    jobs = write_jobs(tmp_path / "jobs.csv", [f"faces/astronaut.png,prompt {i},,{i},2" for i in range(count)])
    dead = [_dead_url(), _dead_url()]
    code = main(["batch", "--servers", ",".join(dead), "--jobs", jobs, "--out", str(tmp_path / "out"),
                 "--no-progress"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert code == 1
    assert len(lines) <= 5, lines  # one line per server, one count, the summary
    assert sum("giving up on this server" in line for line in lines) == 2
    assert any(line.startswith(f"{count} job(s) not run") for line in lines)
    records = results(tmp_path / "out")  # every job still journaled, for the rerun
    assert len(records) == count and all(r["status"] == "error" for r in records)
    assert json.loads(json.dumps(records[0]))["error"].startswith("no server could run this job")


def test_servers_differing_only_in_credentials_keep_apart_in_display_names():
    from consisid_core.batch.scheduler import display_names

    names = display_names([f"http://a:{SECRET}@h:1", f"http://b:{SECRET}x@h:1", "http://h:2"])
    assert names == ["http://***@h:1", "http://***@h:1#2", "http://h:2"]


def test_the_websocket_handshake_carries_the_credentials_too():
    from consisid_core.batch.websocket import WebSocket, WebSocketError

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    seen = {}

    def answer_once():
        conn, _ = listener.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        seen["request"] = data.decode("latin-1")
        conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    client = ComfyClient(f"http://me:{SECRET}@127.0.0.1:{listener.getsockname()[1]}")
    try:
        with pytest.raises(WebSocketError) as caught:
            WebSocket(client.ws_url, timeout=5, headers=client.auth_headers)
    finally:
        thread.join(5)
        listener.close()
    assert client.auth_headers["Authorization"] in seen["request"] and SECRET not in str(caught.value)


def test_the_worker_opens_its_websocket_with_the_credentials(monkeypatch):
    import consisid_core.batch.worker as worker_module

    calls = []
    monkeypatch.setattr(worker_module, "WebSocket", lambda url, timeout, headers=None: calls.append(headers) or None)
    options = BatchOptions(servers=[], workflow={}, out_dir=".")
    worker = worker_module.Worker(f"http://me:{SECRET}@127.0.0.1:9", options, None, [], None, None, None)
    worker._socket()
    assert calls == [{"Authorization": "Basic " + base64.b64encode(f"me:{SECRET}".encode()).decode()}]
    assert SECRET not in worker.server and SECRET not in worker.name
