"""A small in-test server that speaks ComfyUI's HTTP + websocket protocol, for the batch client tests.

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
import socket
import struct
import threading
import time
import urllib.parse
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


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
    from PIL.PngImagePlugin import PngInfo

    marker = PngInfo()
    marker.add_text("comment", "NOFACE")  # no human face: the fake node fails on them like ours does
    Image.fromarray(data.chelsea()).save(folder / "cat.png", pnginfo=marker)
    Image.fromarray(data.coffee()).save(folder / "coffee.png", pnginfo=marker)
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
