"""`generate --takes N`: the best take at --out (the single run with its seed), the ranking beside it, every take
with --keep-takes, and bad takes input refused in one line before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from support.node_graph import DEFAULT_PHOTO, install_tiny_model

TINY = ["--steps", "2", "--frames", "9", "--device", "cpu", "--dtype", "fp32"]


def _main(capsys, *args: str) -> tuple[int, str, str]:
    import warnings

    from consisid_core.cli import main

    formatter = warnings.formatwarning
    try:
        code = main(["generate", *args])
    finally:
        warnings.formatwarning = formatter
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return install_tiny_model(tmp_path_factory.mktemp("takes_cli") / "ConsisID-preview")


@pytest.fixture
def light_scoring(monkeypatch, light_eval_models):
    """The CLI finds and loads the light scoring models instead of the real files."""
    import consisid_core.metrics as metrics

    loads = []
    monkeypatch.setattr(metrics, "locate_eval_files", lambda *a, **k: None)
    monkeypatch.setattr(metrics, "load_eval_models", lambda *a, **k: loads.append(a) or light_eval_models)
    return loads


def _frames(path: Path) -> np.ndarray:
    from consisid_core.metrics.video_io import read_video

    return np.stack(read_video(str(path)))


def test_takes_write_the_best_video_the_ranking_and_every_take(capsys, tmp_path, tiny_folder, light_scoring):
    out = tmp_path / "best.mp4"
    code, stdout, err = _main(capsys, "--model", str(tiny_folder), "--face", str(DEFAULT_PHOTO), "--out", str(out),
                              "--seed", "5", "--takes", "3", "--keep-takes", *TINY)
    assert code == 0, stdout[-2000:] + err[-2000:]
    assert len(light_scoring) == 1, "the scoring models load once"
    ranking = json.loads((tmp_path / "best.takes.json").read_text())
    kept = ranking["kept_seed"]
    assert sorted(row["seed"] for row in ranking["takes"]) == [5, 6, 7] and ranking["takes"][0]["seed"] == kept
    assert ranking["steps_run"] == 6
    assert (tmp_path / "best.takes.txt").read_text().splitlines()[1].split()[:2] == ["1", str(kept)]
    for seed in (5, 6, 7):
        assert (tmp_path / f"best_seed{seed}.mp4").is_file()
    assert np.array_equal(_frames(out), _frames(tmp_path / f"best_seed{kept}.mp4"))
    # the single run with the kept seed gives the same video
    single = tmp_path / "single.mp4"
    code, stdout, err = _main(capsys, "--model", str(tiny_folder), "--face", str(DEFAULT_PHOTO), "--out", str(single),
                              "--seed", str(kept), *TINY)
    assert code == 0, err[-2000:]
    assert np.array_equal(_frames(out), _frames(single))


@pytest.mark.parametrize("args, message", [
    (["--takes", "0"], "takes must be at least 1"),
    (["--takes", "17"], "takes must be at most 16"),
    (["--takes", "3", "--pick-at", "1.5"], "pick-at must be between 0 and 1"),
    (["--takes", "3", "--pick-at", "0.5", "--pick-keep", "3"], "keep must be from 1 to 2"),
    (["--takes", "2", "--motion-floor", "-1"], "--motion-floor must be"),
    (["--take-seeds", "1,x"], "--take-seeds must be whole numbers"),
    (["--take-seeds", "1,2", "--takes", "3"], "disagree"),
    (["--take-seeds", "4,4"], "the take seeds repeat"),
])
def test_bad_takes_options_one_line_before_any_model(capsys, tmp_path, tiny_folder, monkeypatch, args, message):
    import consisid_core.engine.loading as loading

    monkeypatch.setattr(loading, "load_engine", lambda *a, **k: pytest.fail("a model was loaded"))
    code, _, err = _main(capsys, "--model", str(tiny_folder), "--out", str(tmp_path / "v.mp4"), *TINY, *args)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "v.mp4").exists()


def test_takes_without_scoring_files_stop_before_the_video_model(capsys, tmp_path, tiny_folder, monkeypatch):
    import consisid_core.engine.loading as loading

    monkeypatch.setattr(loading, "load_engine", lambda *a, **k: pytest.fail("a model was loaded"))
    code, _, err = _main(capsys, "--model", str(tiny_folder), "--out", str(tmp_path / "v.mp4"), "--takes", "2", *TINY)
    first, *details = err.strip().splitlines()
    assert code == 2 and "--takes 2 ranks takes with the scoring models, and they are not ready" in first, err
    assert all(line.startswith("  ") for line in details), "then the missing files, one per line"


def test_reference_without_a_face_stops_before_the_video_model(capsys, tmp_path, tiny_folder, light_scoring,
                                                               monkeypatch):
    from PIL import Image

    import consisid_core.engine.loading as loading

    monkeypatch.setattr(loading, "load_engine", lambda *a, **k: pytest.fail("a model was loaded"))
    coffee = tmp_path / "coffee.png"
    Image.fromarray(pytest.importorskip("skimage.data").coffee()).save(coffee)
    code, _, err = _main(capsys, "--model", str(tiny_folder), "--face", str(coffee), "--out", str(tmp_path / "v.mp4"),
                         "--takes", "2", *TINY)
    assert code == 2 and "No face was found in the reference photo" in err, err
    assert len(err.strip().splitlines()) == 1
