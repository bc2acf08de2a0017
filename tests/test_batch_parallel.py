"""`batch --parallel`: the layout is parsed strictly and the workflow's Sampler is wired to a workers node."""

from __future__ import annotations

import json

import pytest

from consisid_core.batch.parallel import parse_layout, with_parallel_workers
from consisid_core.cli import main
from consisid_core.parallel import ParallelConfig, ParallelSetupError
from support.node_graph import api_workflow, nodes_of


def test_layouts_parse():
    assert parse_layout("cfg") == ParallelConfig(cfg_parallel=True)
    assert parse_layout("cfg, ulysses=2") == ParallelConfig(True, 2, 1)
    assert parse_layout("ring=3") == ParallelConfig(False, 1, 3)


@pytest.mark.parametrize("text", ["cfg,ulysses=0", "gpus=4", "ulysses=two", "ulysses=1"])
def test_bad_layouts_are_one_line(text):
    with pytest.raises(ParallelSetupError, match="--parallel"):
        parse_layout(text)


@pytest.mark.parametrize("name", ["consisid_basic_api.json", "consisid_core_video_api.json"])
def test_shipped_workflows_get_a_workers_node_on_the_sampler(name):
    workflow = api_workflow(name)
    patched = with_parallel_workers(workflow, ParallelConfig(True, 2, 1))
    (workers,) = nodes_of(patched, "ConsisIDParallelWorkers")
    (sampler,) = nodes_of(patched, "ConsisIDSampler")
    (loader,) = nodes_of(patched, "ConsisIDModelLoader")
    assert patched[sampler]["inputs"]["parallel"] == [workers, 0]
    assert patched[workers]["inputs"] == {"model": [loader, 0], "cfg_parallel": True, "ulysses": 2, "ring": 1}
    assert "parallel" not in workflow[sampler]["inputs"]  # the loaded workflow is left as it was


def test_cli_refuses_a_bad_layout_before_any_work(tmp_path, capsys):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("face,prompt\nface.png,a person\n", encoding="utf-8")
    code = main(["batch", "--jobs", str(jobs), "--out", str(tmp_path / "out"), "--parallel", "cfg,tp=2",
                 "--server", "http://127.0.0.1:9"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'tp=2' is not one of cfg, ulysses=K, ring=R" in err and len(err.strip().splitlines()) == 1


def test_workflow_without_a_single_sampler_is_refused(tmp_path):
    workflow = api_workflow("consisid_basic_api.json")
    (sampler,) = nodes_of(workflow, "ConsisIDSampler")
    workflow["999"] = json.loads(json.dumps(workflow[sampler]))
    with pytest.raises(ParallelSetupError, match="exactly one ConsisIDSampler"):
        with_parallel_workers(workflow, ParallelConfig(cfg_parallel=True))
