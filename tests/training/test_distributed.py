"""The same train command under `accelerate launch` with two CPU processes (gloo) = one process, same global batch."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from consisid_core.training.recipe import TrainConfig
from consisid_core.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
ARGS = ["--lora-rank", "4", "--max-steps", "4", "--lr", "1e-2", "--warmup-steps", "0", "--coarse-steps", "1",
        "--text-dropout", "0", "--checkpoint-every", "100"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_accelerate_launch_matches_one_process(tmp_path, train_model, prepared):
    launcher = Path(sys.executable).with_name("accelerate")
    if not launcher.exists() and shutil.which("accelerate") is None:
        pytest.skip("the accelerate launcher is not installed")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [str(launcher if launcher.exists() else shutil.which("accelerate")), "launch", "--multi_gpu",
               "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
               "-m", "consisid_core", "train", "--model", str(train_model), "--data", str(prepared),
               "--out", str(tmp_path / "two"), *ARGS]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "losses.json").read_text())["losses"]

    config = TrainConfig(mode="lora", lora_rank=4, lora_alpha=4, max_steps=4, learning_rate=1e-2, warmup_steps=0,
                         coarse_steps=1, text_dropout=0.0, checkpoint_every=100, batch_size=2)
    one = Trainer(train_model, prepared, tmp_path / "one", config).run(log=lambda s: None).losses
    print(f"loss curve, 2 processes x batch 1: {two}\n            1 process x batch 2:   {one}")
    assert len(two) == len(one) == 4
    assert two == pytest.approx(one, rel=1e-5, abs=1e-6)
    assert len(set(round(v, 4) for v in one)) > 1  # the curve moves: equality is not between constants
