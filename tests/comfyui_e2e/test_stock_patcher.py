"""Our models under a real ComfyUI's stock ModelPatcher (tests/comfyui_e2e/stock_patcher_check.py, run with
COMFYUI_PYTHON in its own process): partial loads at two budgets give the frames of a full load; every tensor is
reachable by ComfyUI's ops or our cast-on-use hooks; LoRA strength changes re-patch without reloading and equal
the CLI's peft LoRA; fp8 + LoRA + partial load equals fp8 + LoRA fully loaded; /free empties ComfyUI's list.
Skipped when COMFYUI_DIR is unset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]
CHECK = Path(__file__).with_name("stock_patcher_check.py")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    comfyui = os.environ.get("COMFYUI_DIR")
    if not comfyui or not (Path(comfyui) / "comfy" / "model_patcher.py").is_file():
        pytest.skip("COMFYUI_DIR is not set to a ComfyUI checkout")
    out = tmp_path_factory.mktemp("stock") / "results.json"
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    proc = subprocess.run([python, str(CHECK), comfyui, str(out)], cwd=comfyui, capture_output=True, text=True,
                          timeout=1200)
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    print(json.dumps(data, indent=1))
    errors = {k: v["error"] + "\n" + v.get("traceback", "") for k, v in data.items() if "error" in v}
    assert not errors, errors
    return data


def test_partial_loads_at_two_budgets_equal_a_full_load(results):
    r = results["full_vs_partial"]
    assert r["uncovered"] == {"text_encoder": [], "transformer": [], "vae": []}
    assert r["log_names"] == ["T5TextEncoder", "ConsisIDTransformer", "CogVideoXVAE"]
    for fraction in ("0.1", "0.3"):
        assert r[f"model_lowvram_at_{fraction}"] and r[f"lowvram_layers_at_{fraction}"] > 50
        assert r[f"max_diff_at_{fraction}"] == 0.0


def test_lora_strength_changes_without_reload_and_equals_peft(results):
    r = results["lora_strength"]
    assert r["same_engine"]
    assert r["lora_changes_video"] > 1e-2 and r["strength_changes_video"] > 1e-2
    assert r["half_partial_vs_half_full"] == 0.0, "a LoRA is applied once, also when a stage loads a partial model again"
    assert r["removed_equals_base"] == 0.0
    assert r["comfy_lora_vs_peft_lora"] < 1e-4


def test_fp8_with_lora_and_partial_load(results):
    r = results["fp8_lora_partial"]
    assert r["fp8_layers_cast_with_lora_patch"] > 0
    assert r["fp8_partial_vs_full"] == 0.0
    assert r["fp8_lora_changes_video"] > 1e-2
    assert r["fp8_lora_partial_vs_full"] < 1e-4
    assert r["fp8_lora_partial_vs_cli_peft"] < 1e-4 and r["fp8_lora_full_vs_cli_peft"] < 1e-4
    assert r["fp8_unpatched_equals_before"] == 0.0


def test_free_releases_every_model(results):
    r = results["free_releases"]
    assert sorted(r["listed_after_run"]) == ["CogVideoXVAE", "ConsisIDTransformer", "T5TextEncoder"]
    assert r["listed_after_free"] == []
