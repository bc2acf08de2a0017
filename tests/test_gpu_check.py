"""bench/gpu_check.py --device cpu: the GPU check's own code at tiny sizes, so it never rots between GPU runs."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch

from support.pack import REPO


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gpu_check_smoke_run_on_cpu(tmp_path, capsys):
    check = _gpu_check()
    out = tmp_path / "gpu_check.json"
    assert check.main(["--device", "cpu", "--steps", "3", "--modes", "none,sequential_offload", "--json", str(out)]) == 0
    assert torch.is_grad_enabled(), "the check must not switch autograd off for its caller (later tests train)"
    table = capsys.readouterr().out
    report = json.loads(out.read_text())
    rows = {row["name"]: row for row in report["rows"]}
    assert report["profile"] == "tiny" and report["compared"] is False
    for name in ("load time (to device)", "peak host RAM while loading", "time per step (none, sdpa)"):
        assert rows[name]["ours"] > 0 and rows[name]["theirs"] > 0 and name in table
    assert rows["time per step (sequential_offload)"]["ours"] > 0
    assert rows["time per step (attention sdpa_math)"]["ours"] > 0
    assert rows["time per step (attention sdpa_flash)"]["note"] == "not usable here"


def test_worse_figures_fail_the_check_only_when_compared(capsys):
    check = _gpu_check()
    rows = [check.Row("step", "s", 1.06, 1.0), check.Row("vram", "GB", 1.04, 1.0),
            check.Row("info", "s", 9.0, 1.0, compare=False)]
    assert [r.name for r in check.print_table(rows, 0.05, compared=True)] == ["step"]
    assert check.print_table(rows, 0.05, compared=False) == []
    assert "<< WORSE" in capsys.readouterr().out


def test_full_profile_has_the_real_sizes():
    full = _gpu_check().PROFILES["full"]
    t = full.transformer
    assert (t["num_layers"], t["num_attention_heads"] * t["attention_head_dim"], t["text_embed_dim"]) == (42, 3072, 4096)
    assert (t["LFE_id_dim"], t["LFE_vit_dim"], t["LFE_num_querie"], t["LFE_output_dim"]) == (1280, 1024, 32, 2048)
    assert (full.frames, full.height, full.width, full.eva_tokens) == (49, 480, 720, 577)
    assert full.t5["d_model"] == 4096
