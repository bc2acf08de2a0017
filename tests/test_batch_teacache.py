"""Batch overrides teacache / teacache_start / teacache_end, and the computed/skipped record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consisid_core.batch import workflow as wf
from consisid_core.batch.teacache_override import teacache_stats
from consisid_core.errors import ConsisIDError

WORKFLOW = json.loads((Path(__file__).resolve().parents[1] / "workflows" / "api" / "consisid_basic_api.json").read_text())


def _sampler(patched: dict) -> dict:
    return patched[wf.nodes_of(patched, "ConsisIDSampler")[0]]


def test_teacache_override_adds_a_node_wired_to_the_sampler():
    overrides = {"teacache": "0.15", "teacache_start": "5", "steps": "30"}
    patched = wf.apply_job(WORKFLOW, "face.png", "a prompt", overrides=overrides)
    link = _sampler(patched)["inputs"]["cache"]
    node = patched[link[0]]
    assert node["class_type"] == "ConsisIDTeaCache" and link[1] == 0
    assert node["inputs"] == {"threshold": 0.15, "mode": "fixed", "start_step": 5, "end_step": 0,
                              "offload_residuals": False}
    assert _sampler(patched)["inputs"]["steps"] == 30 and "cache" not in _sampler(WORKFLOW)["inputs"]
    assert overrides == {"teacache": "0.15", "teacache_start": "5", "steps": "30"}  # the job's own dict is kept
    # a second override on the patched workflow changes that node instead of adding one
    again = wf.apply_job(patched, "face.png", "a prompt", overrides={"teacache_end": "40"})
    assert len(again) == len(patched) and again[link[0]]["inputs"]["end_step"] == 40


@pytest.mark.parametrize("overrides", [{"teacache": "fast"}, {"teacache_start": "-2"}])
def test_bad_teacache_override_is_one_message(overrides):
    with pytest.raises(ConsisIDError, match="override teacache"):
        wf.apply_job(WORKFLOW, "face.png", "a prompt", overrides=overrides)


def test_stats_are_read_from_the_sampler_history_entry():
    stats = {"computed": 31, "skipped": 19, "skipped_steps": [3, 5]}
    entry = {"outputs": {"9": {"gifs": [{"filename": "a.mp4"}]}, "8": {"teacache": [stats]}}}
    assert teacache_stats(entry) == stats
    assert teacache_stats({"outputs": {"9": {"gifs": []}}}) is None
