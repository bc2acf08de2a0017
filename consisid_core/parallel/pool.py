"""A group of worker processes that keep a parallel engine loaded and denoise on request (for the canvas).

Each worker is one rank of a parallel layout with its own copy of the model; the caller sends the
conditioning (on the CPU) to every rank, rank 0 reports progress and returns the latents. Cancel is
agreed by all ranks at the next step, so the workers stay in step and usable. Nothing here imports ComfyUI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..cancel import Cancelled
from ..errors import ConsisIDError
from .config import ParallelConfig, ParallelSetupError

ProgressHook = Callable[[int, int], None]


class WorkerError(ConsisIDError):
    """A worker process failed; the pool was shut down and is rebuilt on the next use."""


def _on_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _on_cpu(getattr(value, f.name)) for f in dataclasses.fields(value)})
    return value


@contextlib.contextmanager
def _core_importable():
    """While workers start: `consisid_core` importable by name in them. Inside ComfyUI the pack loads it from its
    folder without a sys.path entry; spawned children copy the parent's sys.path, so append the folder above it
    (at the end, so ComfyUI's own `nodes` module still wins)."""
    folder = str(Path(__file__).resolve().parents[2])
    added = folder not in sys.path
    if added:
        sys.path.append(folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ParallelPool:
    """`world_size` ranks of `config`, each with the model at `model_path` loaded with `runtime` settings."""

    def __init__(self, model_path: str, config: ParallelConfig, device: str = "cuda", runtime: dict | None = None,
                 start_timeout: float = 900.0) -> None:
        import torch.multiprocessing as mp

        config.validate(config.world_size)
        if device.startswith("cuda") and torch.cuda.device_count() < config.world_size:
            raise ParallelSetupError(
                f"the parallel layout {config.describe()} needs {config.world_size} GPUs but "
                f"{torch.cuda.device_count()} are visible: lower the degrees or make more GPUs visible"
            )
        self.config, self.model_path, self.device = config, str(model_path), device
        ctx = mp.get_context("spawn")
        self._jobs = [ctx.Queue() for _ in range(config.world_size)]
        self._results, self._progress, self._cancel = ctx.Queue(), ctx.Queue(), ctx.Event()
        port = _free_port()
        self._procs = [
            ctx.Process(target=_worker_main, daemon=True, args=(
                rank, config, port, self.model_path, device, runtime or {}, self._jobs[rank], self._results,
                self._progress, self._cancel))
            for rank in range(config.world_size)
        ]
        with _core_importable():
            for proc in self._procs:
                proc.start()
        ready = 0
        while ready < config.world_size:
            kind, *payload = self._next_result(start_timeout)
            if kind != "ready":
                self.close()
                raise WorkerError(f"a parallel worker could not start: {payload[-1]}")
            ready += 1

    @property
    def alive(self) -> bool:
        return bool(self._procs) and all(p.is_alive() for p in self._procs)

    def denoise(self, text, global_cond, local, progress: ProgressHook | None = None,
                should_cancel: Callable[[], object] | None = None, **settings: Any):
        """`engine.denoise(text, global_cond, local, **settings)` on every rank; rank 0's LatentVideo comes back.

        `should_cancel` is polled while waiting; a True (or its own exception) stops every rank at its next step."""
        if not self.alive:
            raise WorkerError("the parallel workers are gone (a crash or /free): load them again")
        cache = settings.get("cache")
        self._cancel.clear()
        job = (_on_cpu(text), _on_cpu(global_cond), _on_cpu(local), settings)
        for q in self._jobs:
            q.put(job)
        stop: BaseException | None = None
        while True:
            stop = stop or self._drain_progress(progress)
            try:
                if stop is None and should_cancel is not None and should_cancel():
                    stop = Cancelled("cancelled")
            except BaseException as exc:  # ComfyUI's interrupt raises from the hook itself
                stop = exc
            if stop is not None:
                self._cancel.set()
            try:
                kind, *payload = self._results.get(timeout=0.02)
            except queue.Empty:
                if not self.alive:
                    self.close()
                    raise WorkerError("a parallel worker died while sampling; the workers were shut down") from None
                continue
            stop = stop or self._drain_progress(progress)
            if kind == "done" and stop is not None:
                raise stop  # the run ended before the cancel reached the workers; the caller still asked to stop
            if kind == "done":
                video, stats = payload
                if cache is not None and stats is not None:
                    cache.__dict__.update(stats.__dict__)  # the run's computed/skipped counts
                return video
            if kind == "cancelled":
                raise stop if stop is not None else Cancelled("cancelled")
            self.close()
            raise WorkerError(f"parallel worker {payload[0]} failed: {payload[1]}")

    def _drain_progress(self, progress: ProgressHook | None) -> BaseException | None:
        """Report queued steps; a hook that raises (ComfyUI's progress bar on Cancel) becomes the stop reason."""
        while True:
            try:
                step, total = self._progress.get_nowait()
            except queue.Empty:
                return None
            if progress is not None:
                try:
                    progress(step, total)
                except BaseException as exc:
                    self._cancel.set()
                    return exc

    def _next_result(self, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self._results.get(timeout=0.5)
            except queue.Empty:
                if not self.alive:
                    return ("error", -1, "a worker process exited during start-up (see its log above)")
        return ("error", -1, f"the workers did not load the model within {timeout:.0f}s")

    def close(self) -> None:
        """Stop the workers and free their memory (ComfyUI's /free and Unload call this)."""
        for q in self._jobs:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        self._procs = []


def _worker_main(rank, config, port, model_path, device, runtime, jobs, results, progress, cancel) -> None:
    """One rank: join the group, load the engine, then serve jobs until None arrives."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(config.world_size))
    try:
        from .. import load_engine
        from . import init_parallel

        plan = init_parallel(config, device)
        engine = load_engine(model_path, **({"runtime": _runtime(runtime, device)} if runtime else
                                            {"device": device, "dtype": torch.float32 if device == "cpu" else None}))
        engine.parallel = plan
    except BaseException as exc:  # start-up failures travel back as one line
        results.put(("error", rank, f"{type(exc).__name__}: {exc}"))
        return
    results.put(("ready", rank))

    def step_done(step: int, total: int, latents) -> None:
        if plan.agree(cancel.is_set()):
            raise Cancelled("cancelled")
        if plan.is_writer:
            progress.put((step, total))

    while True:
        job = jobs.get()
        if job is None:
            break
        text, global_cond, local, settings = job
        try:
            video = engine.denoise(text, global_cond, local, callback=step_done, **settings)
            if plan.is_writer:
                cache = settings.get("cache")
                results.put(("done", _on_cpu(video), cache))
        except Cancelled:
            if plan.is_writer:
                results.put(("cancelled",))
        except BaseException as exc:
            results.put(("error", rank, f"{type(exc).__name__}: {exc}"))
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _runtime(settings: dict, device: str):
    from ..runtime import resolve_runtime

    return resolve_runtime(**{"device": device, **settings})
