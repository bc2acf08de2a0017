"""Start a real ComfyUI server on a free loopback port and talk to it (HTTP + websocket), for the e2e test.

The server runs with `--base-directory` pointing at a temporary folder, so the user's ComfyUI checkout is
never touched: custom_nodes/ there holds links to this pack (and VideoHelperSuite when the checkout has it),
models/consisid/ the tiny model.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    base: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(comfyui_dir: Path, python: str, base: Path, pack_dir: Path, extra_args=(), timeout: float = 240,
          launch_dir: Path | None = None) -> Server:
    """Launch `python main.py --cpu` with this pack linked in (from `launch_dir`: `python /abs/main.py`); wait until
    /system_stats answers."""
    import urllib.request

    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / "ComfyUI-ConsisID").symlink_to(pack_dir, target_is_directory=True)
    vhs = comfyui_dir / "custom_nodes" / "ComfyUI-VideoHelperSuite"
    if vhs.is_dir():
        (base / "custom_nodes" / "ComfyUI-VideoHelperSuite").symlink_to(vhs.resolve(), target_is_directory=True)
    port = free_port()
    log_path = base / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    command = [python, str(comfyui_dir / "main.py") if launch_dir else "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
               "--disable-auto-launch", *extra_args]
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=launch_dir or comfyui_dir, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(process, port, base, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with {process.returncode}:\n{server.log()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/system_stats", timeout=5) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(1.0)
    server.stop()
    raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f} s:\n{server.log()[-4000:]}")


@dataclass
class RunEvents:
    """What the websocket said about one prompt."""

    prompt_id: str
    messages: list = field(default_factory=list)  # (type, data) of JSON messages for this prompt
    binary_frames: int = 0
    outcome: str = ""  # execution_success / execution_error / execution_interrupted

    def of(self, kind: str) -> list:
        return [d for t, d in self.messages if t == kind]


class Client:
    """Async client of one server: HTTP calls and one websocket per client id."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.client_id = uuid.uuid4().hex

    async def __aenter__(self):
        import aiohttp

        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        self.ws = await self.session.ws_connect(f"{self.server.url}/ws?clientId={self.client_id}", max_msg_size=0)
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()
        await self.session.close()

    async def get_json(self, path: str):
        async with self.session.get(self.server.url + path) as response:
            return response.status, await response.json()

    async def post_json(self, path: str, body: dict):
        async with self.session.post(self.server.url + path, json=body) as response:
            text = await response.text()
            return response.status, (json.loads(text) if text else None)

    async def upload_image(self, path: Path, name: str) -> dict:
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("image", path.read_bytes(), filename=name, content_type="image/png")
        form.add_field("overwrite", "true")
        async with self.session.post(self.server.url + "/upload/image", data=form) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def queue(self, prompt: dict) -> tuple[int, dict]:
        return await self.post_json("/prompt", {"prompt": prompt, "client_id": self.client_id})

    async def view(self, entry: dict) -> bytes:
        params = {"filename": entry["filename"], "subfolder": entry.get("subfolder", ""), "type": entry.get("type", "output")}
        async with self.session.get(self.server.url + "/view", params=params) as response:
            assert response.status == 200, await response.text()
            return await response.read()

    async def follow(self, prompt_id: str, on_message=None, timeout: float = 600) -> RunEvents:
        """Read the websocket until the prompt is finished: `executing` with node None, which ComfyUI sends after
        it stored the history (execution_success/error/interrupted come just before)."""
        import aiohttp

        events = RunEvents(prompt_id)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f} s")
            message = await self.ws.receive(timeout=remaining)
            if message.type == aiohttp.WSMsgType.BINARY:
                events.binary_frames += 1
                continue
            if message.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"websocket closed: {message.type}")
            payload = json.loads(message.data)
            kind, data = payload.get("type"), payload.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            events.messages.append((kind, data))
            if on_message is not None:
                await on_message(kind, data)
            if kind in ("execution_success", "execution_error", "execution_interrupted"):
                events.outcome = kind
            if kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return events


class Browser:
    """Headless Chromium on a page of the server, driven over the DevTools protocol (aiohttp websocket)."""

    # no network beyond the server, no background updates or sync
    QUIET_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--no-first-run")

    def __init__(self, binary: str, profile: Path, window: tuple[int, int] = (1800, 1150)) -> None:
        self.binary, self.profile, self.window = binary, profile, window
        self.next_id = 0

    async def __aenter__(self):
        import aiohttp

        port = free_port()
        self.process = subprocess.Popen(
            [self.binary, *self.QUIET_FLAGS, f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
             f"--user-data-dir={self.profile}", f"--window-size={self.window[0]},{self.window[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session = aiohttp.ClientSession()
        for _ in range(120):
            try:
                async with self.session.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = await response.json()
                    page = next(t for t in targets if t["type"] == "page")
                    break
            except (OSError, aiohttp.ClientError, StopIteration):
                await asyncio.sleep(0.25)
        else:
            raise TimeoutError("Chromium did not open its DevTools port")
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Emulation.setDeviceMetricsOverride", width=self.window[0], height=self.window[1],
                        deviceScaleFactor=1, mobile=False)  # the page gets exactly this viewport
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()
        await self.session.close()
        self.process.terminate()
        self.process.wait(timeout=20)

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = json.loads((await self.ws.receive(timeout=120)).data)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if result.get("exceptionDetails"):
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    async def open_comfyui(self, url: str, timeout: float = 120) -> None:
        """Load the ComfyUI page and wait until its app, node definitions and first workflow tab are ready (a graph
        loaded before that tab opened can be drawn half-way, under the loading mask)."""
        # a returning user: a fresh server's first visit would open the template browser over the canvas
        async with self.session.post(url.rstrip("/") + "/settings/Comfy.TutorialCompleted", json=True) as response:
            assert response.status == 200, await response.text()
        await self.call("Page.enable")
        await self.call("Page.navigate", url=url)
        deadline = asyncio.get_running_loop().time() + timeout
        ready = "(() => { const a = window.app ?? window.comfyAPI?.app?.app; return !!(a && a.graph && " \
                "globalThis.LiteGraph && LiteGraph.registered_node_types['ConsisIDSampler'] && " \
                "!document.querySelector('.p-blockui-mask') && " \
                "(a.extensionManager?.workflow ? a.extensionManager.workflow.activeWorkflow : true)); })()"
        while not await self.evaluate(ready):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the ComfyUI frontend did not load")
            await asyncio.sleep(0.5)
