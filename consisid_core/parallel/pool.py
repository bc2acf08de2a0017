"""A group of worker processes that keep a parallel denoiser loaded and denoise on request (for the canvas).

Each worker is one rank of a parallel layout with its own copy of the transformer (no T5, no VAE: the caller
encodes and decodes); the caller sends the conditioning (on the CPU) and the LoRA stack with every job, rank 0
reports progress and returns the latents. Cancel reaches every rank at once and is agreed at the next step,
so the workers stay in step and usable. Workers end with this process however it ends (see worker_launch).
Nothing here imports ComfyUI.
"""

from __future__ import annotations

import atexit
import itertools
import threading
import weakref
from multiprocessing.connection import wait
from typing import Any, Callable

import torch

from ..cancel import Cancelled
from ..errors import ConsisIDError
from . import worker_launch
from .worker_main import on_cpu, receive, send
from .config import ParallelConfig, ParallelSetupError

ProgressHook = Callable[[int, int], None]


class WorkerError(ConsisIDError):
    """A worker process failed; the pool was shut down and is rebuilt on the next use."""


_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At interpreter exit (Ctrl-C, sys.exit): stop every live pool (signals and kills are the workers' own watch)."""
    for pool in list(_LIVE):
        pool.close(grace=2.0)


class ParallelPool:
    """`world_size` ranks of `config`, each with the transformer at `model_path` on `runtime`'s settings.

    `runtime`: keyword arguments of `resolve_runtime` (dtype, attention, memory_mode, weight_dtype, compile);
    `first_device`: the GPU of rank 0 (the server's device), the others follow it."""

    def __init__(self, model_path: str, config: ParallelConfig, device: str = "cuda", runtime: dict | None = None,
                 start_timeout: float = 900.0, first_device: int = 0) -> None:
        config.validate(config.world_size)
        gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
        if device.startswith("cuda") and gpus < config.world_size:
            raise ParallelSetupError(
                f"the parallel layout {config.describe()} needs {config.world_size} GPUs but "
                f"{gpus} are visible: lower the degrees or make more GPUs visible"
            )
        self.config, self.model_path, self.device = config, str(model_path), device
        self.runtime = dict(runtime if runtime is not None else {"dtype": "fp32"} if device == "cpu" else {})
        self.loras: tuple = ()  # the LoRA stack ((file, strength), ...) of jobs that name none
        self.last_run: dict[int, tuple[str, int]] = {}  # rank -> (how the last job ended, steps it ran)
        self.cancel_seen: dict[int, int | None] = {}  # rank -> steps done when the last job's cancel reached it
        self._jobs = itertools.count(1)
        self._lock = threading.Lock()
        try:
            self._workers = worker_launch.start(config.world_size, start_timeout)
        except RuntimeError as exc:
            raise WorkerError(f"a parallel worker could not start: {exc}") from None
        _LIVE.add(self)
        try:
            self._load(first_device, gpus, start_timeout)
        except BaseException:
            self.close(grace=0)
            raise

    def _load(self, first_device: int, gpus: int, timeout: float) -> None:
        """Every rank joins the group on its GPU and loads its transformer; raises the first failure's line."""
        port = _free_port()
        for worker in self._workers:
            index = (first_device + worker.rank) % gpus if gpus else 0
            self._send(worker, ("setup", {"config": self.config, "port": port, "model_path": self.model_path,
                                          "device": self.device, "device_index": index, "runtime": self.runtime}))
        ready = set()
        while len(ready) < len(self._workers):
            worker, message = self._receive(timeout, "load the model")
            if message[0] != "ready":
                raise WorkerError(f"parallel worker {worker.rank} could not start: {message[-1]}")
            ready.add(worker.rank)

    @property
    def alive(self) -> bool:
        return bool(self._workers) and all(w.alive for w in self._workers)

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    def describe(self) -> list[dict]:
        """Every rank's own report of what it holds (dtype, fp8 layers, compiled blocks, LoRAs, T5/VAE count)."""
        with self._lock:
            self._check_alive()
            for worker in self._workers:
                self._send(worker, ("info",))
            infos: dict[int, dict] = {}
            while len(infos) < len(self._workers):
                worker, message = self._receive(120.0, "answer")
                if message[0] == "info":
                    infos[message[1]] = message[2]
            return [infos[rank] for rank in sorted(infos)]

    def denoise(self, text, global_cond, local, progress: ProgressHook | None = None,
                should_cancel: Callable[[], object] | None = None, loras: tuple | None = None, **settings: Any):
        """`engine.denoise(text, global_cond, local, **settings)` on every rank with the LoRA stack `loras`
        ((file, strength) pairs; None: `self.loras`); rank 0's LatentVideo comes back.

        `should_cancel` is polled while waiting; a True (or its own exception) stops every rank at its next step."""
        with self._lock:
            self._check_alive()
            job_id = next(self._jobs)
            cache = settings.get("cache")
            job = ("job", job_id, on_cpu(text), on_cpu(global_cond), on_cpu(local), settings,
                   tuple(self.loras if loras is None else loras))
            for worker in self._workers:
                self._send(worker, job)
            return self._follow(job_id, cache, progress, should_cancel)

    def _follow(self, job_id: int, cache, progress: ProgressHook | None, should_cancel) -> Any:
        """Forward progress and Cancel until every rank has ended the job."""
        stop: BaseException | None = None
        sent_cancel = False
        ended: dict[int, tuple] = {}
        while len(ended) < len(self._workers):
            try:
                if stop is None and should_cancel is not None and should_cancel():
                    stop = Cancelled("cancelled")
            except BaseException as exc:  # ComfyUI's interrupt raises from the hook itself
                stop = exc
            if stop is not None and not sent_cancel:
                sent_cancel = True
                for worker in self._workers:
                    self._send(worker, ("cancel", job_id))
            worker, message = self._receive(0.05, None)
            if message is not None and message[0] == "end" and message[3] == "failed":
                self.close(grace=0)
                raise WorkerError(f"parallel worker {message[2]} failed: {message[5]}")
            if message is None or message[1] != job_id:
                continue  # nothing yet, or a message of an earlier, abandoned job
            if message[0] == "progress" and progress is not None and stop is None:
                try:
                    progress(message[2], message[3])
                except BaseException as exc:  # ComfyUI's progress bar raises on Cancel
                    stop = exc
            elif message[0] == "end":
                _, _, rank, status, steps, payload, stats, seen = message
                ended[rank] = (status, steps, payload, stats, seen)
        self.last_run = {rank: (status, steps) for rank, (status, steps, *_) in ended.items()}
        self.cancel_seen = {rank: seen for rank, (*_, seen) in ended.items()}
        status, _, video, stats, _ = ended[0]
        if stop is not None:
            raise stop  # also when the run ended before the cancel reached the workers: the caller asked to stop
        if status == "cancelled":
            raise Cancelled("cancelled")
        if cache is not None and stats is not None:
            cache.__dict__.update(stats.__dict__)  # the run's computed/skipped counts
        return video

    def _check_alive(self) -> None:
        if not self.alive:
            self.close(grace=0)
            raise WorkerError("the parallel workers are gone (a crash or /free): load them again")

    def _send(self, worker, message: tuple) -> None:
        try:
            send(worker.conn, message)
        except (OSError, ValueError, AttributeError):
            self._died(worker, "while being sent a job")

    def _receive(self, timeout: float, waiting_for: str | None):
        """(worker, message) from any rank within `timeout` s, or (None, None) when `waiting_for` is None."""
        conns = {w.conn: w for w in self._workers if w.conn is not None}
        for conn in wait(list(conns), timeout):
            worker = conns[conn]
            try:
                return worker, receive(conn)
            except (EOFError, OSError):
                self._died(worker, "")
        for worker in self._workers:
            if not worker.alive:
                self._died(worker, "")
        if waiting_for is None:
            return None, None
        self.close(grace=0)
        raise WorkerError(f"the parallel workers did not {waiting_for} within {timeout:.0f}s")

    def _died(self, worker, when: str) -> None:
        line = worker.last_line()
        self.close(grace=0)
        raise WorkerError(f"parallel worker {worker.rank} exited{' ' + when if when else ''}: {line}")

    def close(self, grace: float = 10.0) -> None:
        """Stop the workers and free their memory (ComfyUI's /free and Unload call this)."""
        workers, self._workers = self._workers, []
        worker_launch.stop(workers, grace)
        _LIVE.discard(self)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
