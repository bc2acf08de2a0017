"""Worker processes started from a server laid out like ComfyUI and launched from another folder
(`python ComfyUI/main.py`, with `ComfyUI/comfy` first on its import path so `utils` means `comfy/utils.py`):
they start without re-running the server's main.py or inheriting its import path, and they end with the
server on SIGTERM, SIGKILL and Ctrl-C (no orphan process, no leaked semaphore)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

FAKE_MAIN = r'''
import os, sys, json, time, importlib.util
with open(os.environ["MAIN_RUNS"], "a") as runs:  # every interpreter that runs this file says so
    runs.write(f"{os.getpid()}\n")
import utils.extra_config  # as ComfyUI's main.py: its own `utils` package must come first
root = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(root, "comfy"))  # what broke the workers: now `utils` is comfy/utils.py
core = os.path.join(os.environ["PACK"], "consisid_core")  # loaded like the pack does: no sys.path entry
spec = importlib.util.spec_from_file_location("consisid_core", os.path.join(core, "__init__.py"),
                                              submodule_search_locations=[core])
module = importlib.util.module_from_spec(spec)
sys.modules["consisid_core"] = module
spec.loader.exec_module(module)
from consisid_core.parallel import ParallelConfig
from consisid_core.parallel.pool import ParallelPool

pool = ParallelPool(sys.argv[1], ParallelConfig(cfg_parallel=True), device="cpu", runtime={"dtype": "fp32"})
print("POOL " + json.dumps({"pids": pool.pids, "infos": pool.describe()}), flush=True)
while True:
    time.sleep(0.5)
'''


def _fake_comfyui(folder: Path) -> Path:
    """ComfyUI's layout where it matters: main.py, a `utils` package, and comfy/utils.py (a module)."""
    (folder / "utils").mkdir(parents=True)
    (folder / "utils" / "__init__.py").write_text("")
    (folder / "utils" / "extra_config.py").write_text("")
    (folder / "comfy").mkdir()
    (folder / "comfy" / "utils.py").write_text("")
    (folder / "comfy" / "model_management.py").write_text("")
    (folder / "main.py").write_text(FAKE_MAIN)
    return folder / "main.py"


def _alive(pid: int) -> bool:
    """Running (a zombie left for a non-reaping init counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _semaphores() -> set[str]:
    shm = Path("/dev/shm")
    return {p.name for p in shm.iterdir() if p.name.startswith("sem.")} if shm.is_dir() else set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and /dev/shm")
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL", "SIGINT"])
def test_workers_start_from_another_folder_and_end_with_the_server(tiny_model, tmp_path, how):
    main = _fake_comfyui(tmp_path / "ComfyUI")
    elsewhere = tmp_path / "elsewhere"  # the folder the server is launched from
    elsewhere.mkdir()
    runs = tmp_path / "main_runs.txt"
    env = {**os.environ, "MAIN_RUNS": str(runs), "PACK": str(REPO), "PYTHONPATH": str(main.parent),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    sems_before = _semaphores()
    server = subprocess.Popen([sys.executable, "ComfyUI/main.py", str(tiny_model)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        for line in server.stdout:
            lines.append(line)
            if line.startswith("POOL "):
                break
        assert lines and lines[-1].startswith("POOL "), "".join(lines[-30:])
        report = json.loads(lines[-1][5:])
        pids = report["pids"]
        assert runs.read_text().split() == [str(server.pid)]  # main.py ran once: in the server, never in a worker
        for info in report["infos"]:
            assert info["main"].endswith(os.path.join("consisid_core", "parallel", "worker_main.py"))
            assert not {str(main.parent), str(main.parent / "comfy"), str(tmp_path)} & set(info["sys_path"])
        assert all(_alive(p) for p in pids)

        getattr(server, {"SIGTERM": "terminate", "SIGKILL": "kill"}.get(how, "send_signal"))(
            *([signal.SIGINT] if how == "SIGINT" else []))
        server.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p for p in pids if _alive(p)]
        print(f"{how}: server exit {server.returncode}; workers {pids} left alive: {left}")
        assert not left, f"worker processes survived the server's {how}: {left}"
        assert not (_semaphores() - sems_before), "semaphores leaked in /dev/shm"
    finally:
        for pid in [server.pid] + (report["pids"] if "report" in locals() else []):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
