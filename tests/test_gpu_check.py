"""bench/gpu_check.py: the GPU check's own code at tiny sizes on the CPU, so it never rots between GPU runs.

The whole command (plan first, every row, exit 0), a kill mid-run (finished rows stay in the JSON), planted faults
(unequal outputs fail the command), --deadline (rows that will not fit are skipped, with the reason)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
import torch

from support.pack import REPO

sys.path.insert(0, str(REPO / "bench"))  # the bench scripts import each other by module name, as `python bench/x.py`
import bench_common  # noqa: E402
import gpu_check  # noqa: E402
from bench_common import Row, check_row, relative_error  # noqa: E402

SCRIPT = REPO / "bench" / "gpu_check.py"


def _fake_plan(monkeypatch, tasks):
    """No model: the plan is `tasks`, the random-model writer does nothing."""
    monkeypatch.setattr(gpu_check, "build_plan", lambda ctx: tasks)
    monkeypatch.setattr(gpu_check, "write_random_model", lambda folder, profile, device: folder)


def _rows(path):
    return {row["name"]: row for row in json.loads(path.read_text())["rows"]}


@pytest.mark.slow
def test_cpu_check_prints_the_plan_first_runs_every_row_and_passes(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--json", str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout
    assert text.index("plan: tiny profile on cpu") < text.index("random tiny model written")
    for task in ("ours = diffusers", "memory mode sequential_offload = none", "pytest -m gpu", "compiled blocks"):
        assert f"  {task}" in text.split("estimated total")[0], task  # every row in the plan, with its estimate
    report = json.loads(out.read_text())
    rows = {row["name"]: row for row in report["rows"]}
    assert report["status"] == "done" and report["profile"] == "tiny" and report["failed"] == []
    for name in ("ours = diffusers ConsisIDPipeline (bf16)", "memory mode model_offload = none",
                 "memory mode sequential_offload = none", "fp8_e4m3fn vs bf16", "fp8_e4m3fn_fast vs fp8_e4m3fn",
                 "parallel cfg2 = one device", "pytest -m gpu"):
        assert rows[name]["kind"] == "correctness" and rows[name]["status"] == "ok", rows[name]
        assert rows[name]["ours"] <= rows[name]["limit"]
    assert 0 < rows["fp8_e4m3fn vs bf16"]["ours"]  # fp8 really changed the weights: the error is measured, not 0
    assert rows["ComfyUI partial load 33% = none"]["status"] == "skipped"
    assert "ComfyUI" in rows["ComfyUI partial load 33% = none"]["note"]
    for name in ("load time (to device)", "time per step (none, sdpa)", "time per step (sequential_offload)",
                 "time per step (attention sdpa_math)", "time per step (fp8_e4m3fn, upcast)"):
        assert rows[name]["ours"] > 0, name
    kinds = [row["kind"] for row in report["rows"]]
    assert kinds == sorted(kinds), "correctness rows come before speed rows"
    assert report["rows"][-1]["name"].startswith("time per step (compiled blocks")  # compile last


@pytest.mark.slow
def test_a_killed_run_keeps_the_rows_that_finished(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--device", "cpu", "--json", str(out), "--only",
                             "=,error"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and json.loads(out.read_text())["rows"]:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads(out.read_text())
    assert report["status"] == "running" and report["plan"]
    assert report["rows"][0]["name"] == "ours = diffusers ConsisIDPipeline (bf16)"
    assert report["rows"][0]["status"] == "ok" and report["tasks"][0]["took_s"] > 0


def test_rows_are_written_as_each_finishes(monkeypatch, tmp_path):
    out = tmp_path / "g.json"
    seen = {}

    def second(ctx):
        seen["rows"] = [row["name"] for row in json.loads(out.read_text())["rows"]]
        return [Row("second", "s", 1.0)]

    _fake_plan(monkeypatch, [gpu_check.Task("first", "correctness", lambda ctx: [check_row("first", 0.0, 1e-3)]),
                             gpu_check.Task("second", "speed", second)])
    assert gpu_check.main(["--device", "cpu", "--json", str(out)]) == 0
    assert seen["rows"] == ["first"], "the first row was in the JSON before the second row started"
    assert list(_rows(out)) == ["first", "second"] and json.loads(out.read_text())["status"] == "done"


def test_unequal_outputs_fail_the_command(monkeypatch, tmp_path, capsys):
    a = torch.randn(1, 3, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    planted = a.clone()
    planted[0, 1] += 0.01  # one frame off: what a stream race or a dtype slip in one memory mode leaves
    out = tmp_path / "g.json"
    _fake_plan(monkeypatch, [
        gpu_check.Task("planted", "correctness",
                       lambda ctx: [check_row("memory mode planted = none", relative_error(planted, a), 1e-3)]),
        gpu_check.Task("after", "speed", lambda ctx: [Row("after", "s", 1.0)]),
    ])
    assert gpu_check.main(["--device", "cpu", "--json", str(out)]) == 1
    rows = _rows(out)
    assert rows["memory mode planted = none"]["status"] == "FAILED" and "after" in rows  # later rows still ran
    assert json.loads(out.read_text())["failed"] == ["memory mode planted = none"]
    assert "FAILED: memory mode planted = none" in capsys.readouterr().out
    _fake_plan(monkeypatch, [gpu_check.Task("crash", "speed", lambda ctx: 1 / 0)])
    assert gpu_check.main(["--device", "cpu", "--json", str(out)]) == 1  # a crashed row fails it too
    assert _rows(out)["crash"]["status"] == "error" and "ZeroDivisionError" in _rows(out)["crash"]["note"]
    _fake_plan(monkeypatch, [gpu_check.Task("equal", "correctness",
                                            lambda ctx: [check_row("equal", relative_error(a, a.clone()), 1e-3)])])
    assert gpu_check.main(["--device", "cpu", "--json", str(out)]) == 0


def test_deadline_skips_what_will_not_fit_and_bounds_the_launches(monkeypatch, tmp_path, capsys):
    out = tmp_path / "g.json"
    ran, timeouts = [], []

    def make(name, kind="correctness"):
        def fn(ctx):
            ran.append(name)
            timeouts.append((ctx.launch_timeout(margin=1, floor=0), ctx.remaining()))
            return [check_row(name, 0.0, 1e-3)] if kind == "correctness" else [Row(name, "s", 1.0)]
        return fn

    tasks = [gpu_check.Task("cheap", "correctness", make("cheap"), own={"tiny": 0}),
             gpu_check.Task("costly", "correctness", make("costly"), own={"tiny": 5000}),
             gpu_check.Task("compile", "compile", make("compile", "speed"), own={"tiny": 5000})]
    _fake_plan(monkeypatch, tasks)
    assert gpu_check.main(["--device", "cpu", "--json", str(out), "--deadline", "120"]) == 0
    text = capsys.readouterr().out
    assert "est s" in text and "5000" in text and "over the deadline" in text  # the plan shows what will not fit
    assert ran == ["cheap"]
    rows = _rows(out)
    assert rows["costly"]["status"] == "skipped" and "--deadline" in rows["costly"]["note"]
    assert rows["compile"]["status"] == "skipped"
    launch, left = timeouts[0]
    assert launch <= left <= 120  # a child process never outlives the budget
    ran.clear()
    assert gpu_check.main(["--device", "cpu", "--json", str(out), "--deadline", "0"]) == 0  # 0: no limit
    assert ran == ["cheap", "costly", "compile"]


def test_estimates_count_a_reused_run_once():
    a = gpu_check.Task("a", "correctness", lambda ctx: [], (("ours", "none"), ("diffusers", "none")))
    b = gpu_check.Task("b", "speed", lambda ctx: [], (("ours", "none"),), own={"full": 3})
    costs = gpu_check.RUN_COST["full"]
    assert gpu_check.estimate(a, "full", set()) == costs[("ours", "none")] + costs[("diffusers", "none")]
    assert gpu_check.estimate(b, "full", {("ours", "none")}) == 3


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["dtype_slip", "stale_block"])
def test_a_planted_fault_in_one_memory_mode_fails_its_row(monkeypatch, tmp_path, fault):
    """Real tiny runs: sequential_offload with a planted fault must fail 'memory mode sequential_offload = none'.

    dtype_slip: the output projection's weights went through float8 in that mode only. stale_block: the first
    block returns its previous call's output (what a copy racing the compute on another stream gives)."""
    real_load = bench_common.load_ours

    def load(ctx, mode="none", **kwargs):
        engine = real_load(ctx, mode, **kwargs)
        if mode == "sequential_offload":
            if fault == "dtype_slip":
                proj = engine.transformer.proj_out
                proj.weight.data = proj.weight.data.to(torch.float8_e4m3fn).to(proj.weight.dtype)
            else:
                last = {}

                def stale(module, args, output):
                    previous = last.get("out", output)
                    last["out"] = output
                    return previous

                engine.transformer.transformer_blocks[0].register_forward_hook(stale)
        return engine

    monkeypatch.setattr(bench_common, "load_ours", load)
    out = tmp_path / "g.json"
    assert gpu_check.main(["--device", "cpu", "--json", str(out), "--only", "memory mode"]) == 1
    rows = _rows(out)
    assert rows["memory mode model_offload = none"]["status"] == "ok"
    bad = rows["memory mode sequential_offload = none"]
    assert bad["status"] == "FAILED" and bad["ours"] > bad["limit"], bad
    assert torch.is_grad_enabled(), "the check must not switch autograd off for its caller"


class _FakePatcher:
    """ComfyUI's ModelPatcher surface the row uses; `drop` plants a partial loader that loses one layer."""

    def __init__(self, engine, drop: bool) -> None:
        self.engine, self.drop, self.loaded = engine, drop, 0

    def model_size(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.engine.transformer.parameters())

    def load(self, device, lowvram_model_memory=0):
        self.loaded = lowvram_model_memory
        if self.drop:
            self.engine.transformer.transformer_blocks[1].ff.net[2].weight.data.zero_()

    def loaded_size(self) -> int:
        return self.loaded

    def detach(self):
        pass


@pytest.mark.slow
@pytest.mark.parametrize("drop", [False, True], ids=["faithful", "planted-lost-layer"])
def test_comfy_partial_load_rows_compare_with_mode_none(monkeypatch, tmp_path, drop):
    monkeypatch.setattr(gpu_check, "comfy_model_factory",
                        lambda cuda: (lambda engine, device: _FakePatcher(engine, drop), ""))
    out = tmp_path / "g.json"
    assert gpu_check.main(["--device", "cpu", "--json", str(out), "--only", "comfyui"]) == (1 if drop else 0)
    rows = [r for r in json.loads(out.read_text())["rows"] if r["name"].startswith("ComfyUI partial load")]
    assert len(rows) == 2 and all(r["status"] == ("FAILED" if drop else "ok") for r in rows), rows


def test_comfy_rows_skip_with_the_reason_without_comfyui(monkeypatch):
    monkeypatch.setitem(sys.modules, "comfy", None)  # ComfyUI not importable
    make, why = gpu_check.comfy_model_factory(False)
    assert make is None and "ComfyUI is not importable" in why


def test_worse_figures_fail_only_compared_speed_rows(capsys):
    rows = [Row("step", "s", 1.06, 1.0), Row("vram", "GB", 1.04, 1.0), Row("info", "s", 9.0, 1.0, compare=False),
            check_row("error", 0.5, 1.0)]
    assert [r.name for r in gpu_check.print_table(rows, 0.05, compared=True)] == ["step"]
    assert gpu_check.print_table(rows, 0.05, compared=False) == []
    assert "WORSE" in capsys.readouterr().out
    assert check_row("nan", math.nan, 1.0).status == "FAILED" and check_row("none", None, 1.0).failed


def test_full_profile_has_the_real_sizes():
    full = gpu_check.PROFILES["full"]
    t = full.transformer
    assert (t["num_layers"], t["num_attention_heads"] * t["attention_head_dim"], t["text_embed_dim"]) == (42, 3072, 4096)
    assert (t["LFE_id_dim"], t["LFE_vit_dim"], t["LFE_num_querie"], t["LFE_output_dim"]) == (1280, 1024, 32, 2048)
    assert (full.frames, full.height, full.width, full.eva_tokens) == (49, 480, 720, 577)
    assert full.t5["d_model"] == 4096
