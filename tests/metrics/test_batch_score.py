"""batch --score: scores added to each finished job's journal line, summary per prompt and face, no rescoring."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from consisid_core.batch.jobs import Job
from consisid_core.batch.scoring import SUMMARY_FILE, format_summary, score_results

from metrics_fixtures import pan


def _mp4(path, frames):
    import imageio.v2 as imageio

    imageio.mimwrite(path, list(frames), fps=8, codec="libx264", quality=9, macro_block_size=1)
    return str(path)


def test_scores_join_the_journal(fast_models, photos, tmp_path):
    face = tmp_path / "astro.png"
    Image.fromarray(photos["astronaut"]).save(face)
    jobs = [Job("a", "ka", 1, str(face), "a man on the moon"), Job("b", "kb", 2, str(face), "a man in a park"),
            Job("c", "kc", 3, str(face), "a man in a park")]
    records = [
        {"job": "a", "key": "ka", "status": "ok", "output": _mp4(tmp_path / "a.mp4", pan(photos["astronaut"], 3))},
        {"job": "b", "key": "kb", "status": "ok", "output": _mp4(tmp_path / "b.mp4", pan(photos["coffee"], 3))},
        {"job": "c", "key": "kc", "status": "failed", "output": None, "error": "boom"},
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = score_results(str(tmp_path), jobs, fast_models, "fixed", log=lambda _: None)
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 5 and [x["key"] for x in lines[3:]] == ["ka", "kb"]
    a, b = lines[3]["scores"], lines[4]["scores"]
    assert a["face_frames"] == 3 and a["facesim_arc"] > 0 and b["face_frames"] == 0 and b["facesim_arc"] == 0.0
    assert lines[3]["status"] == "ok" and lines[3]["output"] == records[0]["output"]  # the record is kept whole
    assert summary["per_prompt"]["a man in a park"]["videos"] == 1 and summary["all"]["videos"] == 2
    assert summary["all"]["facesim_arc"] == pytest.approx((a["facesim_arc"] + b["facesim_arc"]) / 2)
    assert summary["per_face"][str(face)]["videos"] == 2 and summary["set_fid"] is not None
    assert json.loads((tmp_path / SUMMARY_FILE).read_text())["all"] == summary["all"]
    assert "per prompt:" in format_summary(summary) and "a man on the moon" in format_summary(summary)
    score_results(str(tmp_path), jobs, fast_models, "fixed", log=lambda _: None)  # a rerun scores nothing again
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 5


def test_batch_score_refuses_missing_scoring_files_before_running(photos, tmp_path, capsys):
    from consisid_core.cli import main as cli_main

    Image.fromarray(photos["astronaut"]).save(tmp_path / "a.png")
    (tmp_path / "jobs.csv").write_text("face,prompt\na.png,a man\n", encoding="utf-8")
    code = cli_main(["batch", "--server", "http://127.0.0.1:9", "--jobs", str(tmp_path / "jobs.csv"), "--out",
                     str(tmp_path / "out"), "--no-progress", "--score", "--score-model", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and "glint360k_curricular_face_r101_backbone.bin" in err and "det_10g.onnx" in err
    assert not (tmp_path / "out" / "results.jsonl").exists()  # nothing was sent to a server
