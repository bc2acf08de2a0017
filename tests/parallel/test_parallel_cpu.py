"""Parallel generation on CPU (gloo, 2 processes under torchrun) equals one process.

xfuser itself refuses to import without an accelerator (its envs module raises NotImplementedError), so on
CPU the CFG split runs on plain torch.distributed and the Ulysses split on yunchang, xfuser's USP layer."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import consisid_core
from consisid_core.parallel import ParallelConfig, ParallelSetupError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from parallel_worker import THRESHOLDS, run  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(model: Path, out: Path, layout: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           str(HERE / "parallel_worker.py"), str(model), str(out), layout]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def single(tiny_model):
    engine = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)
    return {tc: run(engine, tc) for tc in THRESHOLDS}


@pytest.mark.parametrize("layout", ["2,1,1", "1,2,1"], ids=["cfg", "ulysses"])
def test_two_processes_equal_one(tiny_model, single, tmp_path, layout):
    """Each layout, without and with TeaCache, equals the single-process run within 1e-5."""
    if layout.startswith("1,2") and importlib.util.find_spec("yunchang") is None:
        pytest.skip("yunchang (the parallel extra's USP layer) is not installed: Ulysses not tested")
    out = tmp_path / "latents.pt"
    result = _torchrun(tiny_model, out, layout)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = torch.load(out, weights_only=True)
    for teacache in THRESHOLDS:
        got, want = runs[teacache], single[teacache]
        diff = (got["latents"] - want["latents"]).abs().max().item()
        print(f"parallel {layout} teacache={teacache}: max |difference| vs one process = {diff:.2e}, "
              f"skipped steps {got['skipped']}")
        assert diff <= 1e-5
        assert got["skipped"] == want["skipped"]
        assert bool(got["skipped"]) == bool(teacache)  # the cached path really ran


def test_xfuser_status_is_reported():
    """Says why xfuser is not used on this machine (it needs an accelerator to import)."""
    if importlib.util.find_spec("xfuser") is None:
        pytest.skip("xfuser is not installed (optional `parallel` extra); CPU paths use torch.distributed + yunchang")
    if not torch.cuda.is_available():
        with pytest.raises(NotImplementedError):
            import xfuser  # noqa: F401
        pytest.skip("xfuser cannot initialise on CPU (it raises at import without an accelerator)")


def test_wrong_degree_product_is_one_clear_line():
    with pytest.raises(ParallelSetupError, match="needs 4 processes but 2 were launched"):
        ParallelConfig(cfg_parallel=True, ulysses_degree=2).validate(2)


def test_uneven_tokens_and_cfg_without_guidance_are_refused():
    with pytest.raises(ParallelSetupError, match="226 text tokens cannot be split evenly over 4"):
        ParallelConfig(ulysses_degree=4).check_tokens(226, 1352, guidance=True)
    with pytest.raises(ParallelSetupError, match="1350 video tokens per frame"):
        ParallelConfig(ulysses_degree=4).check_tokens(228, 1350, guidance=True)
    with pytest.raises(ParallelSetupError, match="guidance is off"):
        ParallelConfig(cfg_parallel=True).check_tokens(226, 1350, guidance=False)


def test_missing_usp_package_is_one_clear_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "yunchang" else real(name, *a))
    with pytest.raises(ParallelSetupError, match="pip install xfuser"):
        ParallelConfig(ulysses_degree=2).validate(2)


def test_not_launched_by_torchrun(monkeypatch):
    from consisid_core.parallel import init_parallel

    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ParallelSetupError, match="torchrun --nproc_per_node 2"):
        init_parallel(ParallelConfig(cfg_parallel=True), device="cpu")


def _torchrun_cli(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "consisid_core", "generate", "--random-weights", "--device", "cpu",
           *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=HERE.parents[1])


@pytest.mark.parametrize("args,message", [
    (("--cfg-parallel", "--ulysses", "2"), "needs 4 processes but 2 were launched"),
    ((), "torchrun started 2 processes but no parallel layout was given"),
    (("--ring", "2"), "ring attention (--ring > 1) runs only on CUDA"),
], ids=["degree-product", "no-layout", "ring-on-cpu"])
def test_cli_bad_layouts_fail_before_loading_with_one_line(tmp_path, args, message):
    result = _torchrun_cli(*args, "--out", str(tmp_path / "x.mp4"))
    assert result.returncode != 0
    assert message in result.stderr and "error: " in result.stderr
    assert "build random model" not in result.stdout  # refused before any model work
    assert not (tmp_path / "x.mp4").exists()
