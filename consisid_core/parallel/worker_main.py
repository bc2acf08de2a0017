"""One parallel worker process: `python -m consisid_core.parallel.worker_main`, started by `worker_launch`.

A fresh interpreter (never the server's `__main__` re-run, never the server's sys.path): it ties its life to
the parent (Linux parent-death signal, and a reader thread that exits when the parent's socket closes),
joins the process group, loads only the transformer and serves denoising jobs. Cancel requests arrive while
a job runs and are agreed by all ranks at the end of the current step.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import sys
import threading
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

ENV_ADDRESS = "CONSISID_WORKER_ADDRESS"  # host:port of the parent's socket
ENV_KEY = "CONSISID_WORKER_KEY"  # hex secret the worker sends first (the parent unpickles nothing before it)
ENV_RANK = "CONSISID_WORKER_RANK"
ENV_PARENT = "CONSISID_WORKER_PARENT"  # the parent's pid


def send(conn: Connection, message: tuple) -> None:
    """Plain pickle over the socket: Connection.send's pickler would share tensors through shared memory and
    a multiprocessing resource server this process is not part of."""
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def receive(conn: Connection) -> tuple:
    return pickle.loads(conn.recv_bytes())


def is_comfyui_path(entry: str) -> bool:
    """A ComfyUI root or its `comfy` package folder: on a worker's import path they shadow real packages."""
    folder = Path(entry or ".")
    return (folder / "comfy" / "model_management.py").is_file() or (
        (folder / "model_management.py").is_file() and (folder / "model_patcher.py").is_file())


def _tie_to_parent(parent: int) -> None:
    """Die with the parent: SIGKILL on its death (Linux), and exit now if it is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    if parent and os.getppid() != parent:
        os._exit(3)


def _read_forever(conn: Connection, inbox: queue.Queue, cancelled: dict, current: dict) -> None:
    """Route the parent's messages (a cancel is noted with the step the job had reached); the parent gone (socket
    closed) ends this process at once."""
    while True:
        try:
            message = receive(conn)
        except (EOFError, OSError):  # the parent exited, was killed, or closed us
            os._exit(4)
        except BaseException as exc:  # a message that cannot be read here: the main thread reports it
            message = ("unreadable", _line(exc))
        if message[0] == "cancel":
            cancelled[message[1]] = current["step"]
        else:
            inbox.put(message)


def _line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def on_cpu(value: Any) -> Any:
    """Tensors (also inside dataclasses such as the conditioning stages) moved to the CPU for sending."""
    import dataclasses

    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: on_cpu(getattr(value, f.name)) for f in dataclasses.fields(value)})
    return value


class _Worker:
    """This rank's plan and transformer-only engine, serving the parent's jobs."""

    def __init__(self, conn: Connection, rank: int, setup: dict) -> None:
        from ..runtime import resolve_runtime
        from . import init_parallel
        from .worker_engine import load_denoiser

        self.conn, self.rank = conn, rank
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(setup["port"]), RANK=str(rank),
                          LOCAL_RANK=str(setup["device_index"]), WORLD_SIZE=str(setup["config"].world_size))
        runtime = resolve_runtime(**{"device": setup["device"], **setup["runtime"]})
        self.plan = init_parallel(setup["config"], setup["device"])
        self.engine = load_denoiser(setup["model_path"], runtime)
        self.engine.parallel = self.plan

    def info(self) -> None:
        from .worker_engine import describe

        send(self.conn, ("info", self.rank, describe(self.engine)))

    def run(self, job: tuple, cancelled: dict, current: dict) -> None:
        """Denoise one job; every rank reports how it ended and after how many steps, rank 0 the latents."""
        from ..cancel import Cancelled
        from ..engine.lora import use_loras

        _, job_id, text, global_cond, local, settings, loras = job
        writer, steps = self.plan.is_writer, 0
        current["step"] = 0
        if job_id in cancelled:  # cancelled before it started
            cancelled[job_id] = 0

        def step_done(step: int, total: int, latents) -> None:
            nonlocal steps
            steps = current["step"] = step
            if self.plan.agree(job_id in cancelled):  # all ranks stop at the same step
                raise Cancelled("cancelled")
            if writer:
                send(self.conn, ("progress", job_id, step, total))

        try:
            use_loras(self.engine, tuple(loras))
            video = self.engine.denoise(text, global_cond, local, callback=step_done, **settings)
            cache = settings.get("cache")
            send(self.conn, ("end", job_id, self.rank, "done", steps, on_cpu(video) if writer else None,
                             cache if writer else None, cancelled.get(job_id)))
        except Cancelled:
            send(self.conn, ("end", job_id, self.rank, "cancelled", steps, None, None, cancelled.get(job_id)))
        except BaseException as exc:  # the worker's own error line goes to the caller
            send(self.conn, ("end", job_id, self.rank, "failed", steps, _line(exc), None, None))
        finally:
            cancelled.pop(job_id, None)

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def main() -> None:
    rank, parent = int(os.environ[ENV_RANK]), int(os.environ.get(ENV_PARENT, "0"))
    _tie_to_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle; we end with it
    sys.path[:] = [p for p in sys.path if p and not is_comfyui_path(p)]
    host, port = os.environ[ENV_ADDRESS].rsplit(":", 1)
    conn = Client((host, int(port)))
    conn.send_bytes(bytes.fromhex(os.environ.pop(ENV_KEY)))
    send(conn, ("hello", rank, os.getpid()))
    inbox: queue.Queue = queue.Queue()
    cancelled: dict = {}  # job id -> the step its job had reached when the cancel arrived
    current = {"step": 0}
    threading.Thread(target=_read_forever, args=(conn, inbox, cancelled, current), name="consisid-parent-watch",
                     daemon=True).start()
    try:
        worker = _Worker(conn, rank, inbox.get()[1])
    except BaseException as exc:  # start-up failures travel back as one line
        send(conn, ("error", rank, _line(exc)))
        raise
    send(conn, ("ready", rank, os.getpid()))
    while True:
        message = inbox.get()
        if message[0] == "stop":
            break
        if message[0] == "info":
            worker.info()
        elif message[0] == "job":
            worker.run(message, cancelled, current)
        elif message[0] == "unreadable":  # fails the job the parent is waiting for
            send(conn, ("end", None, rank, "failed", 0, message[1], None, None))
    worker.close()
    conn.close()


if __name__ == "__main__":
    main()
