"""API batch client against a small in-test server that speaks ComfyUI's HTTP + websocket protocol.

The fake server (loopback only, bounded) mimics ComfyUI 0.8's /upload/image, /prompt (400 on invalid
workflows), /ws (status, execution_start, executing, progress, executed, execution_success/_error),
/history/{id}, /queue and /view; it runs one prompt at a time like ComfyUI. A face whose bytes contain
NOFACE fails in ConsisIDFaceCropAlign the way our node does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from consisid_core.batch import BatchOptions, load_jobs, load_workflow, run_batch
from consisid_core.batch import workflow as wf
from consisid_core.batch.jobs import JobsFileError, parse_overrides
from consisid_core.batch.websocket import WebSocket

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- fake ComfyUI


def api_workflow(output: str = "VHS_VideoCombine") -> dict:
    """An API workflow shaped like workflows/api/consisid_basic_api.json."""
    flow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "consisid_face.png"}},
        "2": {"class_type": "ConsisIDModelLoader", "inputs": {"model": "ConsisID-preview", "precision": "bf16", "memory_mode": "none", "attention": "sdpa"}},
        "3": {"class_type": "ConsisIDFaceModelsLoader", "inputs": {"model": "ConsisID-preview", "onnx_provider": "CPU"}},
        "4": {"class_type": "ConsisIDFaceCropAlign", "inputs": {"face_models": ["3", 0], "image": ["1", 0], "face_selection": "largest"}},
        "5": {"class_type": "ConsisIDTextEncode", "inputs": {"model": ["2", 0], "prompt": "placeholder", "negative_prompt": ""}},
        "6": {"class_type": "ConsisIDLocalExtractor", "inputs": {"face_models": ["3", 0], "image": ["4", 0], "face_scale": 1.0}},
        "7": {"class_type": "ConsisIDGlobalExtractor", "inputs": {"model": ["2", 0], "face": ["4", 0]}},
        "8": {"class_type": "ConsisIDSampler", "inputs": {
            "model": ["2", 0], "text": ["5", 0], "global_cond": ["7", 0], "local_cond": ["6", 0], "seed": 42,
            "steps": 50, "cfg": 6.0, "use_dynamic_cfg": False, "width": 720, "height": 480, "num_frames": 49}},
        "9": {"class_type": "ConsisIDDecode", "inputs": {"model": ["2", 0], "latents": ["8", 0], "vae_tiling": True}},
    }
    if output == "VHS_VideoCombine":
        flow["10"] = {"class_type": "VHS_VideoCombine", "inputs": {
            "images": ["9", 0], "frame_rate": 8, "loop_count": 0, "filename_prefix": "ConsisID",
            "format": "video/h264-mp4", "pix_fmt": "yuv420p", "crf": 19, "save_metadata": True,
            "trim_to_audio": False, "pingpong": False, "save_output": True}}
    else:
        flow["10"] = {"class_type": "CreateVideo", "inputs": {"images": ["9", 0], "fps": 8.0}}
        flow["11"] = {"class_type": "SaveVideo", "inputs": {"video": ["10", 0], "filename_prefix": "video/ComfyUI", "format": "auto", "codec": "auto"}}
    return flow


class FakeComfy:
    """A loopback server speaking enough of ComfyUI's API for the batch client."""

    def __init__(self, step_delay: float = 0.01, port: int = 0):
        self.step_delay = step_delay
        self.uploads: dict[str, bytes] = {}
        self.upload_count = 0
        self.prompts: list[dict] = []  # every accepted /prompt body
        self.history: dict[str, dict] = {}
        self.files: dict[tuple[str, str], bytes] = {}
        self.pending: list[str] = []
        self.running: str | None = None
        self.max_outstanding = 0
        self.sockets: dict[str, tuple[socket.socket, threading.Lock]] = {}
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.queue_items: dict[str, tuple[dict, str]] = {}
        self.stopping = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._threads = [
            threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True),
            threading.Thread(target=self._executor, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.wake.notify_all()
            sockets = list(self.sockets.values())
        for sock, _ in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------ websocket push

    def send(self, client_id: str | None, event: str, data: dict) -> None:
        if client_id is None or client_id not in self.sockets:
            return
        sock, lock = self.sockets[client_id]
        payload = json.dumps({"type": event, "data": data}).encode()
        header = bytes([0x81])
        header += bytes([len(payload)]) if len(payload) < 126 else bytes([126]) + struct.pack(">H", len(payload))
        try:
            with lock:
                sock.sendall(header + payload)
        except OSError:
            pass

    # ------------------------------------------------------------ execution (one prompt at a time)

    def _executor(self) -> None:
        while True:
            with self.lock:
                while not self.pending and not self.stopping:
                    self.wake.wait(0.1)
                if self.stopping:
                    return
                prompt_id = self.pending.pop(0)
                self.running = prompt_id
                flow, client_id = self.queue_items[prompt_id]
            self._execute(prompt_id, flow, client_id)
            with self.lock:
                self.running = None

    def _execute(self, prompt_id: str, flow: dict, client_id: str) -> None:
        messages = []

        def emit(event, data, record=True):
            data = {**data, "prompt_id": prompt_id}
            if record:
                messages.append([event, data])
            self.send(client_id, event, data)

        emit("execution_start", {})
        emit("execution_cached", {"nodes": []})
        face_name = next(n["inputs"]["image"] for n in flow.values() if n["class_type"] == "LoadImage")
        face = self.uploads.get(face_name, b"")
        sampler = next(n for n in flow.values() if n["class_type"] == "ConsisIDSampler")
        steps = int(sampler["inputs"]["steps"])
        if b"NOFACE" in face:
            emit("executing", {"node": "4"}, record=False)
            emit("execution_error", {
                "node_id": "4", "node_type": "ConsisIDFaceCropAlign", "executed": ["1", "3"],
                "exception_message": f"ConsisID Face Crop&Align: no face found in {face_name}; use a clearer frontal photo or another face selection.",
                "exception_type": "consisid_core.errors.ConsisIDError", "traceback": [], "current_inputs": {}, "current_outputs": [],
            })
            status = {"status_str": "error", "completed": False, "messages": messages}
            outputs = {}
        else:
            emit("executing", {"node": "8"}, record=False)
            for step in range(1, steps + 1):
                time.sleep(self.step_delay)
                emit("progress", {"value": step, "max": steps, "node": "8"}, record=False)
            out_id, out_node = next((i, n) for i, n in flow.items() if n["class_type"] in ("VHS_VideoCombine", "SaveVideo"))
            prefix = out_node["inputs"]["filename_prefix"]
            subfolder, _, stem = prefix.rpartition("/")
            filename = f"{stem}_00001.mp4"
            text = next(n for n in flow.values() if n["class_type"] == "ConsisIDTextEncode")["inputs"]["prompt"]
            self.files[(subfolder, filename)] = f"MP4|{text}|{sampler['inputs']['seed']}|{steps}".encode()
            item = {"filename": filename, "subfolder": subfolder, "type": "output"}
            ui = {"gifs": [{**item, "format": "video/h264-mp4", "frame_rate": 8.0}]} if out_node["class_type"] == "VHS_VideoCombine" \
                else {"images": [item], "animated": [True]}
            emit("executed", {"node": out_id, "output": ui})
            emit("execution_success", {})
            status = {"status_str": "success", "completed": True, "messages": messages}
            outputs = {out_id: ui}
        with self.lock:
            self.history[prompt_id] = {"prompt": [0, prompt_id, flow, {}, []], "outputs": outputs, "status": status, "meta": {}}
            del self.queue_items[prompt_id]
        self.send(client_id, "executing", {"node": None, "prompt_id": prompt_id})

    # ------------------------------------------------------------ http

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _json(self, code: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/ws":
                    return self._websocket(query.get("clientId") or uuid.uuid4().hex)
                if url.path.startswith("/history/"):
                    prompt_id = url.path.rsplit("/", 1)[1]
                    with fake.lock:
                        entry = fake.history.get(prompt_id)
                    return self._json(200, {prompt_id: entry} if entry else {})
                if url.path == "/queue":
                    with fake.lock:
                        running = [[0, fake.running, {}, {}, []]] if fake.running else []
                        pending = [[i + 1, p, {}, {}, []] for i, p in enumerate(fake.pending)]
                    return self._json(200, {"queue_running": running, "queue_pending": pending})
                if url.path == "/view":
                    data = fake.files.get((query.get("subfolder", ""), query.get("filename", "")))
                    if data is None or query.get("type") != "output":
                        self.send_response(404)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self._json(404, {})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if self.path == "/upload/image":
                    message = BytesParser(policy=HTTP).parsebytes(
                        f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
                    fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
                    image = fields.get("image")
                    if image is None or not image.get_filename():
                        return self._json(400, {})
                    with fake.lock:
                        fake.uploads[image.get_filename()] = image.get_payload(decode=True)
                        fake.upload_count += 1
                    return self._json(200, {"name": image.get_filename(), "subfolder": "", "type": "input"})
                if self.path == "/prompt":
                    request = json.loads(body)
                    flow = request["prompt"]
                    errors = {}
                    for node_id, node in flow.items():
                        if node["class_type"] == "LoadImage" and node["inputs"]["image"] not in fake.uploads:
                            errors[node_id] = {"errors": [{"type": "custom_validation_failed", "message": "Custom validation failed for node",
                                                           "details": f"image - Invalid image file: {node['inputs']['image']}"}],
                                               "dependent_outputs": ["10"], "class_type": "LoadImage"}
                        sampler_steps = node["inputs"].get("steps") if node["class_type"] == "ConsisIDSampler" else None
                        if sampler_steps is not None and not isinstance(sampler_steps, int):
                            errors[node_id] = {"errors": [{"type": "invalid_input_type", "message": "Failed to convert an input value to a INT value",
                                                           "details": f"steps, {sampler_steps}"}], "class_type": "ConsisIDSampler"}
                    if errors:
                        return self._json(400, {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                                                          "details": "", "extra_info": {}}, "node_errors": errors})
                    prompt_id = str(uuid.uuid4())
                    with fake.lock:
                        fake.prompts.append(flow)
                        fake.queue_items[prompt_id] = (flow, request.get("client_id"))
                        fake.pending.append(prompt_id)
                        outstanding = len(fake.pending) + (1 if fake.running else 0)
                        fake.max_outstanding = max(fake.max_outstanding, outstanding)
                        fake.wake.notify_all()
                    return self._json(200, {"prompt_id": prompt_id, "number": len(fake.prompts), "node_errors": {}})
                self._json(404, {})

            def _websocket(self, client_id: str) -> None:
                key = self.headers["Sec-WebSocket-Key"]
                accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept)
                self.end_headers()
                self.wfile.flush()
                sock = self.connection
                fake.sockets[client_id] = (sock, threading.Lock())
                fake.send(client_id, "status", {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id})
                try:
                    sock.settimeout(30)
                    while not fake.stopping:
                        head = sock.recv(2)
                        if len(head) < 2:
                            break
                        length = head[1] & 0x7F
                        if length == 126:
                            length = struct.unpack(">H", sock.recv(2))[0]
                        sock.recv(4 + length)
                        if head[0] & 0x0F == 0x8:
                            break
                except OSError:
                    pass
                finally:
                    if fake.sockets.get(client_id, (None,))[0] is sock:
                        fake.sockets.pop(client_id, None)
                    self.close_connection = True

        return Handler


@pytest.fixture
def faces(tmp_path):
    """Real photos (scikit-image's astronaut) plus two 'bad photos' the fake server fails on."""
    from PIL import Image
    from skimage import data

    folder = tmp_path / "faces"
    folder.mkdir()
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(data.astronaut()[::-1]).save(folder / "astronaut_flipped.png")
    for name in ("cat.png", "coffee.png"):  # no human face: the fake node fails on them like ours does
        (folder / name).write_bytes(b"\x89PNG NOFACE " + name.encode())
    return folder


def write_jobs(path, rows, header="face,prompt,negative_prompt,seed,steps"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def results(out_dir) -> list[dict]:
    path = os.path.join(out_dir, "results.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture
def server():
    fake = FakeComfy()
    yield fake
    fake.stop()


# ---------------------------------------------------------------- unit tests


def test_websocket_client_roundtrip(server):
    ws = WebSocket(server.url.replace("http", "ws") + "/ws?clientId=abc", timeout=5)
    ws.settimeout(5)
    first = ws.recv_json()
    assert first["type"] == "status" and first["data"]["sid"] == "abc"
    ws.close()


def test_jobs_csv_columns_overrides_and_row_errors(tmp_path, faces):
    csv_path = tmp_path / "jobs.csv"
    csv_path.write_text(
        "Face Image,Prompt,Negative,Seed,steps,8.cfg,overrides\n"
        "faces/astronaut.png,a woman in space,blurry,7,30,7.5,num_frames=9;ConsisIDDecode.vae_tiling=false\n"
        "faces/missing.png,a man,,,,,\n"
        "faces/astronaut.png,,,abc,,,\n",
        encoding="utf-8",
    )
    jobs = load_jobs(str(csv_path))
    assert [j.name for j in jobs] == ["job-001", "job-002", "job-003"]
    first = jobs[0]
    assert first.face == str(faces / "astronaut.png") and first.negative_prompt == "blurry" and first.seed == 7
    assert first.overrides == {"steps": "30", "8.cfg": "7.5", "num_frames": "9", "ConsisIDDecode.vae_tiling": "false"}
    assert first.error is None
    assert "face image not found" in jobs[1].error
    assert "empty prompt" in jobs[2].error and "seed 'abc'" in jobs[2].error
    # keys are content hashes: stable across reads, different per row
    again = load_jobs(str(csv_path))
    assert [j.key for j in again] == [j.key for j in jobs] and len({j.key for j in jobs}) == 3


def test_jobs_csv_needs_face_and_prompt_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("image_path,caption\nx.png,hello\n", encoding="utf-8")
    with pytest.raises(JobsFileError, match="no 'face' column"):
        load_jobs(str(path))
    with pytest.raises(ValueError, match="not key=value"):
        parse_overrides("steps")


def test_apply_job_patches_by_class_and_coerces_types():
    flow = api_workflow()
    patched = wf.apply_job(
        flow, "consisid_abc.png", "a prompt", "bad things", 123,
        {"steps": "30", "cfg": "7", "8.num_frames": "9", "ConsisIDDecode.vae_tiling": "false", "use_dynamic_cfg": "yes"},
        output_prefix="consisid_batch/job-001",
    )
    assert flow["8"]["inputs"]["steps"] == 50, "the original workflow must stay untouched"
    sampler = patched["8"]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"], sampler["num_frames"], sampler["use_dynamic_cfg"]) == (123, 30, 7.0, 9, True)
    assert isinstance(sampler["cfg"], float) and isinstance(sampler["steps"], int)
    assert patched["9"]["inputs"]["vae_tiling"] is False
    assert patched["1"]["inputs"]["image"] == "consisid_abc.png"
    assert patched["5"]["inputs"] == {"model": ["2", 0], "prompt": "a prompt", "negative_prompt": "bad things"}
    assert patched["10"]["inputs"]["filename_prefix"] == "consisid_batch/job-001"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"stepz": "3"}, "no node of the workflow has an input named 'stepz'"),
        ({"steps": "3.5"}, "not a whole number"),
        ({"ConsisIDSampler.foo": "1"}, "has no input 'foo'"),
        ({"NoSuchNode.steps": "1"}, "no node with id or class 'NoSuchNode'"),
        ({"model": "x"}, "wired to another node"),
    ],
)
def test_apply_job_rejects_bad_overrides(overrides, message):
    with pytest.raises(wf.WorkflowError, match=message):
        wf.apply_job(api_workflow(), "f.png", "p", overrides=overrides)


def test_load_workflow_refuses_ui_format(tmp_path):
    path = tmp_path / "ui.json"
    path.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    with pytest.raises(wf.WorkflowError, match="UI-format"):
        load_workflow(str(path))


def test_output_files_reads_vhs_gifs_and_core_images():
    vhs = {"outputs": {"10": {"gifs": [{"filename": "a.mp4", "subfolder": "s", "type": "output", "format": "video/h264-mp4"}]},
                       "12": {"images": [{"filename": "p.png", "subfolder": "", "type": "temp"}]}}}
    core = {"outputs": {"11": {"images": [{"filename": "b.mp4", "subfolder": "video", "type": "output"}], "animated": [True]}}}
    assert [f["filename"] for f in wf.output_files(vhs)] == ["a.mp4", "p.png"]
    assert wf.output_files(vhs)[0]["video"] and not wf.output_files(vhs)[1]["video"]
    assert wf.output_files(core)[0] == {"node": "11", "key": "images", "filename": "b.mp4", "subfolder": "video", "type": "output", "video": True}


# ---------------------------------------------------------------- end to end against the fake server


def _options(servers, out_dir, flow=None, **kw) -> BatchOptions:
    return BatchOptions(servers=servers, workflow=flow or api_workflow(), out_dir=str(out_dir), progress=False,
                        timeout=60, poll_interval=0.5, reconnect_window=5, **kw)


@pytest.mark.parametrize("output", ["VHS_VideoCombine", "SaveVideo"])
def test_batch_downloads_videos_and_records_failures(tmp_path, faces, server, output):
    rows = [
        "faces/astronaut.png,a woman walking on the moon,,1,3",
        "faces/cat.png,a cat,,2,3",
        "faces/astronaut_flipped.png,a woman in a garden,low quality,3,4",
        "faces/astronaut.png,the same woman dancing,,4,3",
        "faces/nothing_here.png,a ghost,,5,3",
    ]
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", rows))
    summary = run_batch(jobs, _options([server.url], tmp_path / "out", api_workflow(output)))
    assert (summary.ok, summary.failed, summary.errors) == (3, 2, 0)
    records = {r["job"]: r for r in results(tmp_path / "out")}
    assert set(records) == {"job-001", "job-002", "job-003", "job-004", "job-005"}
    for name, prompt, seed, steps in (("job-001", "a woman walking on the moon", 1, 3), ("job-003", "a woman in a garden", 3, 4)):
        record = records[name]
        assert record["status"] == "ok" and record["error"] is None and record["seconds"] > 0
        with open(record["output"], "rb") as handle:
            assert handle.read() == f"MP4|{prompt}|{seed}|{steps}".encode()
        assert record["output"].endswith(f"{name}.mp4")
    assert records["job-002"]["status"] == "failed"
    assert "ConsisIDFaceCropAlign (node 4): ConsisID Face Crop&Align: no face found" in records["job-002"]["error"]
    assert records["job-005"]["status"] == "failed" and "face image not found" in records["job-005"]["error"]
    # 4 jobs reached the server; 3 distinct faces were uploaded once each
    assert len(server.prompts) == 4 and server.upload_count == 3
    assert server.max_outstanding == 1, "one job in flight per server"
    assert server.prompts[2]["5"]["inputs"]["negative_prompt"] == "low quality"


def test_batch_reports_validation_errors_from_prompt(tmp_path, faces, server):
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", ["faces/astronaut.png,a woman,,1,abc"]))
    summary = run_batch(jobs, _options([server.url], tmp_path / "out"))
    assert summary.failed == 1
    error = results(tmp_path / "out")[0]["error"]
    assert "override steps=abc" in error and "not a whole number" in error
    assert not server.prompts, "a job whose overrides do not fit is never submitted"


def test_batch_spreads_jobs_over_servers_one_in_flight_each(tmp_path, faces):
    first, second = FakeComfy(step_delay=0.02), FakeComfy(step_delay=0.02)
    try:
        rows = [f"faces/astronaut{'_flipped' if i % 2 else ''}.png,prompt {i},,{i},5" for i in range(8)]
        jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", rows))
        started = time.monotonic()
        summary = run_batch(jobs, _options([first.url, second.url], tmp_path / "out"))
        assert summary.ok == 8 and time.monotonic() - started < 60
        assert len(first.prompts) >= 2 and len(second.prompts) >= 2 and len(first.prompts) + len(second.prompts) == 8
        assert first.max_outstanding == 1 and second.max_outstanding == 1
        assert first.upload_count <= 2 and second.upload_count <= 2, "each distinct face uploaded once per server"
        assert {r["server"] for r in results(tmp_path / "out")} == {first.url, second.url}
    finally:
        first.stop()
        second.stop()


def test_batch_survives_a_dead_server(tmp_path, faces, server):
    dead = f"http://127.0.0.1:{_free_port()}"
    rows = [f"faces/astronaut.png,prompt {i},,{i},2" for i in range(4)]
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", rows))
    summary = run_batch(jobs, _options([dead, server.url], tmp_path / "out"))
    assert summary.ok == 4 and len(server.prompts) == 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_RUNNER = (
    "import argparse, sys\n"
    "from consisid_core.cli import batch\n"
    "p = argparse.ArgumentParser(); batch.add_arguments(p)\n"
    "sys.exit(batch.run(p.parse_args(sys.argv[1:])))\n"
)


def _submitted(out_dir) -> list[dict]:
    path = os.path.join(out_dir, ".submitted.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip().endswith("}")]


def _start_cli(args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", _RUNNER, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_batch_cli_killed_and_restarted_skips_finished_jobs(tmp_path, faces):
    server = FakeComfy(step_delay=0.05)  # 6 steps x 50 ms per good job: slow enough to kill mid-batch
    try:
        rows = [f"faces/{'cat' if i in (2, 6) else 'astronaut'}.png,prompt {i},,{i},6" for i in range(10)]
        jobs_csv = write_jobs(tmp_path / "jobs.csv", rows)
        workflow_path = tmp_path / "flow.json"
        workflow_path.write_text(json.dumps(api_workflow()))
        out = tmp_path / "out"
        args = ["--server", server.url, "--jobs", jobs_csv, "--out", str(out), "--workflow", str(workflow_path), "--no-progress"]
        proc = _start_cli(args)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:  # kill while a job runs on the server
            done = {r["key"] for r in results(out)}
            in_flight = [r for r in _submitted(out) if r["key"] not in done]
            if len(done) >= 4 and in_flight:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        before = results(out)
        assert 4 <= len(before) < 10, "the batch must be killed mid-way"
        assert [r for r in _submitted(out) if r["key"] not in {b["key"] for b in before}], "a job was in flight"
        finished_first = {r["job"] for r in before}

        proc = _start_cli(args)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 1, output  # two jobs failed (no face)
        assert f"{len(before)} skipped" in output
        final = {r["job"]: r for r in results(out)}
        assert len(final) == 10 and len(results(out)) == 10, "every job recorded exactly once"
        assert sorted(n for n, r in final.items() if r["status"] == "failed") == ["job-003", "job-007"]
        assert all(os.path.isfile(r["output"]) for r in final.values() if r["status"] == "ok")
        prompts_per_job = {}
        for flow in server.prompts:
            prompt = flow["5"]["inputs"]["prompt"]
            prompts_per_job[prompt] = prompts_per_job.get(prompt, 0) + 1
        for name in finished_first:  # job-00k ran "prompt k-1"
            assert prompts_per_job[f"prompt {int(name[-3:]) - 1}"] == 1, name
        # the job in flight at the kill is picked up by its prompt id, not submitted again
        assert len(server.prompts) == 10, prompts_per_job
    finally:
        server.stop()


def test_batch_server_restart_mid_job_resubmits(tmp_path, faces):
    server = FakeComfy(step_delay=0.1)
    port = int(server.url.rsplit(":", 1)[1])
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", [f"faces/astronaut.png,prompt {i},,{i},10" for i in range(2)]))
    holder = {}

    def restart():
        while not server.running:
            time.sleep(0.01)
        time.sleep(0.3)
        server.stop()  # ComfyUI restarted: its queue and history are gone
        time.sleep(0.5)
        holder["new"] = FakeComfy(step_delay=0.01, port=port)

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    try:
        summary = run_batch(jobs, _options([server.url], tmp_path / "out"))
        thread.join(10)
        assert summary.ok == 2, results(tmp_path / "out")
        assert len(holder["new"].prompts) >= 2, "the job lost in the restart was submitted again"
    finally:
        if "new" in holder:
            holder["new"].stop()


# ---------------------------------------------------------------- a real ComfyUI (COMFYUI_DIR)


@pytest.mark.comfyui
@pytest.mark.slow
def test_batch_against_a_real_comfyui(tmp_path, faces):
    """Tiny model folder in the server's models/consisid/, core-video API workflow, 3 good + 1 broken photo."""
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        pytest.skip("COMFYUI_DIR is not set: the real-ComfyUI batch test needs a ComfyUI checkout")
    from consisid_core.testing.tiny_face_models import write_face_encoder
    from consisid_core.testing.tiny_models import TinySpec, write_tiny_model

    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    link = os.path.join(comfy_dir, "custom_nodes", "ComfyUI-ConsisID")
    if not os.path.exists(link):
        os.symlink(REPO, link)
    name = f"consisid_batch_test_{os.getpid()}"
    model = os.path.join(comfy_dir, "models", "consisid", name)
    spec = TinySpec()
    write_face_encoder(write_tiny_model(model, spec))
    (faces / "broken.png").write_bytes(b"not an image at all")
    port = _free_port()
    log = open(tmp_path / "comfyui.log", "w")
    server_proc = subprocess.Popen([python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port)],
                                   cwd=comfy_dir, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(url + "/object_info/ConsisIDSampler", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server_proc.poll() is not None:
                    pytest.fail("ComfyUI did not start: see " + str(tmp_path / "comfyui.log"))
                time.sleep(0.5)
        size = f"{spec.width},{spec.height},{spec.frames}"
        header = "face,prompt,seed,steps,width,height,num_frames,memory_mode,precision,ConsisIDModelLoader.model,ConsisIDFaceModelsLoader.model"
        rows = [f"faces/{face},prompt {i},{i},2,{size},none,fp32,{name},{name}"
                for i, face in enumerate(["astronaut.png", "broken.png", "astronaut_flipped.png", "astronaut.png"])]
        jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", rows, header))
        flow = load_workflow(os.path.join(REPO, "workflows", "api", "consisid_core_video_api.json"))
        summary = run_batch(jobs, _options([url], tmp_path / "out", flow))
        records = {r["job"]: r for r in results(tmp_path / "out")}
        assert summary.ok == 3 and summary.failed == 1, records
        assert records["job-002"]["error"].startswith("LoadImage (node 1):")
        import imageio.v3 as iio

        for job in ("job-001", "job-003", "job-004"):
            frames = iio.imread(records[job]["output"], plugin="pyav")
            assert frames.shape[:3] == (spec.frames, spec.height, spec.width)
    finally:
        server_proc.terminate()
        server_proc.wait(30)
        log.close()
        shutil.rmtree(model, ignore_errors=True)
