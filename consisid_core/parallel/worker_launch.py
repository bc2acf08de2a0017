"""Start parallel worker processes as fresh interpreters and connect to them (the parent's side of worker_main).

Each worker is `sys.executable -m consisid_core.parallel.worker_main` run from the pack's folder, so its import
path is that folder plus the interpreter's own (no `__main__` re-run, no server sys.path, no ComfyUI folder
from PYTHONPATH). Workers are started from one long-lived thread (a Linux parent-death signal fires when the
*thread* that started the child ends). Their output is copied to our stderr and its last lines kept, so a worker
that dies without a word still gets its own error line into the message.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hmac
import os
import queue
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from . import worker_main

PACK_ROOT = Path(__file__).resolve().parents[2]  # the folder holding consisid_core
ENTRY = "consisid_core.parallel.worker_main"
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")  # a traceback's last line


class Worker:
    """One started worker: its process, its connection (after the handshake) and its last output lines."""

    def __init__(self, rank: int, process: subprocess.Popen) -> None:
        self.rank, self.process = rank, process
        self.conn: Connection | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        threading.Thread(target=self._copy_output, name=f"consisid-worker-{rank}-output", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _copy_output(self) -> None:
        for raw in iter(self.process.stdout.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip()
            self.tail.append(text)
            try:
                sys.stderr.write(f"[ConsisID worker {self.rank}] {text}\n")
            except (OSError, ValueError):
                pass

    def last_line(self) -> str:
        """The worker's own last error line (a traceback's final line), or its exit code."""
        time.sleep(0.2)  # let the output thread catch the last lines of a process that just ended
        lines = [line.strip() for line in self.tail if line.strip()]
        for line in reversed(lines):
            if _ERROR_LINE.match(line):
                return line
        code = self.process.poll()
        return lines[-1] if lines else f"it exited with code {code}" if code is not None else "no output"

def child_env(rank: int, address: str, key: str) -> dict[str, str]:
    """The worker's environment: ours, minus ComfyUI folders on PYTHONPATH, plus how to reach us."""
    env = dict(os.environ)
    kept = [p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p and not worker_main.is_comfyui_path(p)]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    env.setdefault("OMP_NUM_THREADS", "1")  # as torchrun: N ranks on one machine must not oversubscribe its cores
    env.update({"PYTHONUNBUFFERED": "1", worker_main.ENV_ADDRESS: address, worker_main.ENV_KEY: key,
                worker_main.ENV_RANK: str(rank), worker_main.ENV_PARENT: str(os.getpid())})
    return env


_requests: queue.Queue = queue.Queue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawn_forever() -> None:
    while True:
        future, args, kwargs = _requests.get()
        try:
            future.set_result(subprocess.Popen(args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)


def _popen(args: list[str], **kwargs) -> subprocess.Popen:
    """Popen from the process-long spawner thread (a child's parent-death signal follows that thread)."""
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawn_forever, name="consisid-worker-spawner", daemon=True)
            _spawner.start()
    future: concurrent.futures.Future = concurrent.futures.Future()
    _requests.put((future, args, kwargs))
    return future.result()


def start(world_size: int, timeout: float) -> list[Worker]:
    """Start `world_size` workers and return them connected (rank order); raises RuntimeError with a worker's line."""
    key = secrets.token_hex(32)
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    address = "127.0.0.1:%d" % server.getsockname()[1]
    workers: list[Worker] = []
    try:
        for rank in range(world_size):
            process = _popen([sys.executable, "-m", ENTRY], cwd=str(PACK_ROOT), env=child_env(rank, address, key),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            workers.append(Worker(rank, process))
        _accept(server, workers, key, time.monotonic() + timeout)
    except BaseException:
        stop(workers, grace=0)
        raise
    finally:
        server.close()
    return workers


def _accept(server: socket.socket, workers: list[Worker], key: str, deadline: float) -> None:
    """Accept one authenticated connection per worker (the secret first, as raw bytes, before any unpickling)."""
    waiting = {w.rank: w for w in workers}
    while waiting:
        dead = [w for w in waiting.values() if not w.alive]
        if dead:
            raise RuntimeError(f"parallel worker {dead[0].rank} exited during start-up: {dead[0].last_line()}")
        if time.monotonic() > deadline:
            raise RuntimeError("the parallel workers did not connect in time")
        try:
            client, _ = server.accept()
        except (socket.timeout, BlockingIOError):
            continue
        client.settimeout(None)
        conn = Connection(client.detach())
        try:
            if not conn.poll(10) or not hmac.compare_digest(conn.recv_bytes(64), bytes.fromhex(key)):
                conn.close()
                continue
            _, rank, _pid = worker_main.receive(conn)
        except (OSError, EOFError):
            conn.close()
            continue
        worker = waiting.pop(rank, None)
        if worker is None:
            conn.close()
            continue
        worker.conn = conn


def stop(workers: list[Worker], grace: float = 10.0) -> None:
    """Ask workers to stop, wait up to `grace` seconds, then kill what is left; close every connection."""
    for worker in workers:
        if worker.conn is not None and worker.alive and grace > 0:
            try:
                worker_main.send(worker.conn, ("stop",))
            except (OSError, ValueError):
                pass
    deadline = time.monotonic() + grace
    for worker in workers:
        try:
            worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        if worker.alive:
            worker.process.kill()
            worker.process.wait(timeout=10)
        if worker.conn is not None:
            worker.conn.close()
