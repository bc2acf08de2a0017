"""`batch --takes N` through the fake ComfyUI server: N take-jobs per job, each take's scores and the kept seed
in results.jsonl, nothing re-rendered or re-scored on a rerun."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from consisid_core.batch import BatchOptions, load_jobs, run_batch
from consisid_core.errors import ConsisIDError
from support.fake_comfy import api_workflow, faces, results, server, write_jobs  # noqa: F401 (fixtures)


def _options(servers, out_dir) -> BatchOptions:
    return BatchOptions(servers=servers, workflow=api_workflow(), out_dir=str(out_dir), progress=False, timeout=60,
                        poll_interval=0.5, reconnect_window=5)


def _video_for(path: str) -> np.ndarray:
    """The fake server writes b'MP4|prompt|seed|steps'; a real-looking take: the astronaut panned, darker per seed."""
    from metrics_fixtures import pan
    from skimage import data

    seed = int(open(path, "rb").read().decode().split("|")[2])
    shade = 1.0 - 0.12 * ((seed + 1) % 3)  # the brightest take is neither the first nor always the last
    return (pan(data.astronaut(), 6, step=6).astype(np.float32) * shade).astype(np.uint8)


def test_takes_per_job_scores_and_kept_seed_resume_safe(tmp_path, faces, server, light_eval_models, monkeypatch):  # noqa: F811
    import consisid_core.metrics as metrics
    import consisid_core.metrics.video_io as video_io
    from consisid_core.batch.takes import expand_jobs

    monkeypatch.setattr(video_io, "read_video", _video_for)
    scored = []
    original_score = metrics.score_video
    monkeypatch.setattr(metrics, "score_video", lambda *a, **k: scored.append(1) or original_score(*a, **k))
    jobs = load_jobs(write_jobs(tmp_path / "jobs.csv", ["faces/astronaut.png,a woman on the moon,,10,2",
                                                        "faces/astronaut.png,a woman in a garden,,,2"]))
    batch = expand_jobs(jobs, 3, api_workflow())
    assert [j.seed for j in batch.jobs] == [10, 11, 12, 42, 43, 44]  # row seed, else the workflow's sampler seed
    out = tmp_path / "out"
    summary = run_batch(batch.jobs, _options([server.url], out))
    assert summary.ok == 6
    assert sorted(p["8"]["inputs"]["seed"] for p in server.prompts) == [10, 11, 12, 42, 43, 44]

    lines = batch.pick(str(out), light_eval_models, log=lambda text: None)
    assert len(scored) == 6
    kept_first: list[bool] = []
    for job in jobs:
        line = lines[job.key]
        assert line["status"] == "ok" and len(line["takes"]) == 3
        # independent check: score each take's video directly; all move, so the highest (Arc+Cur)/2 is kept
        identity = {}
        for take in line["takes"]:
            s = original_score(light_eval_models, _video_for(take["output"]), job.face, job.prompt)
            assert take["scores"]["facesim_arc"] == s.facesim_arc and take["scores"]["motion"] == s.motion
            identity[take["seed"]] = (s.facesim_arc + s.facesim_cur) / 2
        assert line["kept_seed"] == max(identity, key=identity.get)
        kept_first.append(line["kept_seed"] == line["takes"][0]["seed"])
        assert line["output"] == next(t["output"] for t in line["takes"] if t["seed"] == line["kept_seed"])
    assert not all(kept_first), "the data must make a later take win somewhere"
    final = {r["key"]: r for r in results(out)}
    assert final[jobs[0].key]["kept_seed"] == lines[jobs[0].key]["kept_seed"]
    assert all("scores" in final[key] for key in batch.takes_of[jobs[0].key].values()), "each take's own line"

    # rerun: nothing rendered again, nothing scored again, the same choice
    prompts, scored[:] = len(server.prompts), []
    again = run_batch(expand_jobs(jobs, 3, api_workflow()).jobs, _options([server.url], out))
    assert again.skipped == 6 and len(server.prompts) == prompts
    relines = expand_jobs(jobs, 3, api_workflow()).pick(str(out), light_eval_models, log=lambda text: None)
    assert scored == [] and {k: v["kept_seed"] for k, v in relines.items()} == {k: v["kept_seed"] for k, v in lines.items()}


def _args(**kw) -> argparse.Namespace:
    values = dict(takes=3, score=False, motion_floor=None, score_model="missing", score_eval_dir=None,
                  score_buffalo_l_dir=None)
    values.update(kw)
    return argparse.Namespace(**values)


@pytest.mark.parametrize("kw, words", [(dict(takes=0), "at least 1"), (dict(takes=99), "at most 16"),
                                       (dict(score=True), "leave out --score"),
                                       (dict(motion_floor=-1.0), "--motion-floor"),
                                       (dict(), "scoring models, and they are not ready")])
def test_bad_batch_takes_refused_before_any_job(kw, words):
    from consisid_core.batch.takes import takes_for_batch

    with pytest.raises(ConsisIDError, match=words) as exc:
        takes_for_batch(_args(**kw), [], api_workflow())
    assert "\n" not in str(exc.value).split(": ", 1)[0]


def test_one_take_is_a_plain_batch():
    from consisid_core.batch.takes import takes_for_batch

    assert takes_for_batch(_args(takes=1), [], api_workflow()) is None


def test_batch_cli_takes(tmp_path, faces, server, light_eval_models, monkeypatch, capsys):  # noqa: F811
    import consisid_core.metrics as metrics
    import consisid_core.metrics.video_io as video_io
    from consisid_core.cli import main

    monkeypatch.setattr(video_io, "read_video", _video_for)
    monkeypatch.setattr(metrics, "locate_eval_files", lambda *a, **k: None)
    monkeypatch.setattr(metrics, "load_eval_models", lambda *a, **k: light_eval_models)
    jobs = write_jobs(tmp_path / "jobs.csv", ["faces/astronaut.png,a woman on the moon,,10,2"])
    workflow = tmp_path / "flow.json"
    import json

    workflow.write_text(json.dumps(api_workflow()))
    out = tmp_path / "out"
    code = main(["batch", "--jobs", jobs, "--out", str(out), "--server", server.url, "--workflow", str(workflow),
                 "--takes", "3", "--no-progress", "--timeout", "60"])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert "kept the best of 3 for 1 of 1 job(s)" in stdout
    final = [r for r in results(out) if "kept_seed" in r]
    assert len(final) == 1 and final[0]["kept_seed"] in (10, 11, 12) and len(final[0]["takes"]) == 3
    assert sorted(p["8"]["inputs"]["seed"] for p in server.prompts) == [10, 11, 12]
