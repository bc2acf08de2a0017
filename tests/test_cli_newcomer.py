"""The newcomer path: the console command names itself, every option shows its default, the check's hints lead
to a folder the loaders accept, `demo-model` writes a model to keep, `batch` finds its workflow."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from consisid_core import catalog, model_status
from consisid_core.cli import MODULE_PROG, build_parser, main, program_name

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the command names itself


def test_program_name_follows_how_it_was_started():
    assert program_name("/venv/bin/consisid") == "consisid"
    assert program_name("C:\\venv\\Scripts\\consisid.exe".replace("\\", os.sep)) == "consisid"
    assert program_name(str(REPO / "consisid_core" / "__main__.py")) == MODULE_PROG
    assert program_name("-m") == MODULE_PROG


def test_console_command_and_module_print_their_own_usage(tmp_path):
    script = tmp_path / "consisid"  # what pip's console-script wrapper does: sys.argv[0] is the command's path
    script.write_text("import sys\nfrom consisid_core.cli import main\nsys.exit(main())\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    console = subprocess.run([sys.executable, str(script), "check-models", "--bogus"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert console.returncode == 2 and console.stderr.startswith("error: consisid: "), console.stderr
    usage = subprocess.run([sys.executable, str(script), "demo-model", "--help"], capture_output=True, text=True,
                           env=env, timeout=120)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: consisid demo-model "), usage.stdout[:200]
    module = subprocess.run([sys.executable, "-m", "consisid_core", "--help"], capture_output=True, text=True,
                            env=env, timeout=120, cwd=tmp_path)
    assert module.returncode == 0 and module.stdout.startswith(f"usage: {MODULE_PROG} "), module.stdout[:200]


# ---------------------------------------------------------------- help texts


@pytest.mark.parametrize("command", ["batch", "check-models", "demo-model"])
def test_every_option_has_help_and_its_default(command):
    parser = build_parser(command, prog="consisid")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    missing = []
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        text = (action.help or "") % {"default": action.default, "prog": "consisid"} if action.help else ""
        if not text or not ("default" in text or "required" in text or not action.option_strings and "no default" in text):
            missing.append(action.dest)
    assert not missing, f"{command}: options without help or default: {missing}"


# ---------------------------------------------------------------- follow the check's hints into an empty folder


def _tiny_source(tmp_path_factory) -> Path:
    from consisid_core.demo.face_models import write_face_encoder
    from consisid_core.demo.video_models import TinySpec, write_tiny_model

    model = write_tiny_model(tmp_path_factory.mktemp("tiny_source") / "model", TinySpec(tokenizer="spiece"))
    write_face_encoder(model, eva="tiny", antelopev2_full_pack=False)
    return model


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory) -> Path:
    return _tiny_source(tmp_path_factory)


def _follow_hints(folder: Path, source: Path) -> None:
    """Put a file of the tiny-model factory wherever the check says a missing one goes (shards: a copy of the
    component's single file; index: naming those shards)."""
    import json

    report = model_status.check_model_folder(str(folder))
    for status in report.files:
        if status.status != model_status.MISSING:
            continue
        target = Path(status.target)
        rel = target.relative_to(folder).as_posix()
        target.parent.mkdir(parents=True, exist_ok=True)
        if (source / rel).is_file():
            shutil.copy(source / rel, target)
        elif rel.endswith(".index.json"):
            component = rel.split("/")[0]
            names = [Path(s.path).name for s in report.files if s.path.startswith(component + "/")
                     and s.path.endswith(".safetensors")]
            target.write_text(json.dumps({"weight_map": {f"w{i}": n for i, n in enumerate(names)}}))
        elif rel.endswith(".safetensors"):
            component = rel.split("/")[0]
            single = next((source / component).glob("*.safetensors"))
            shutil.copy(single, target)
        else:
            name = Path(rel).name
            found = next(source.rglob(name), None)
            assert found is not None or not status.required, f"the tiny model has no {name} for the hint {target}"
            if found is not None:
                shutil.copy(found, target)


@pytest.mark.parametrize("face_encoder_present", [False, True])
def test_following_the_hints_gives_a_folder_the_loaders_accept(tmp_path, tiny_source, face_encoder_present):
    from consisid_core.engine.files import resolve_model_folder
    from consisid_core.face.weights import locate_face_weights

    folder = tmp_path / "ConsisID-preview"
    folder.mkdir()
    if face_encoder_present:
        (folder / catalog.FACE_ENCODER_DIR).mkdir()
    _follow_hints(folder, tiny_source)
    resolve_model_folder(folder)  # the video model's resolver (engine loading, generate's pre-load check)
    expected = folder / catalog.FACE_ENCODER_DIR / "models" / "antelopev2"
    for given in (folder / catalog.FACE_ENCODER_DIR, folder):  # the CLI passes face_encoder/, the nodes the model
        assert locate_face_weights(given).antelopev2_dir == expected
    assert model_status.deep_check(folder) == []
    again = model_status.check_model_folder(str(folder))
    assert not [f.path for f in again.files if f.status == model_status.MISSING and f.required]


# ---------------------------------------------------------------- demo-model


@pytest.fixture
def quick_demo(monkeypatch, tiny_source):
    """demo-model with the tiny factory copy instead of the full-size random face networks (minutes on a CPU)."""
    import consisid_core.demo

    def build(folder, check=None):
        shutil.copytree(tiny_source, folder)
        return Path(folder)

    monkeypatch.setattr(consisid_core.demo, "build_demo_model", build)


def test_demo_model_writes_a_folder_to_keep_and_a_clip(tmp_path, quick_demo, capsys):
    from consisid_core.cli.demo_model import MARKER
    from consisid_core.video import count_frames

    out, clips = tmp_path / "demo", tmp_path / "clips"
    assert main(["demo-model", str(out), "--clips", str(clips)]) == 0
    printed = capsys.readouterr().out
    assert (out / MARKER).is_file() and (out / "model_index.json").is_file()
    assert model_status.deep_check(out) == []
    assert count_frames(clips / "demo_portrait.mp4") == 60 and (clips / "demo_portrait.txt").is_file()
    assert f"prepare-data --model {out}" in printed and f"train --model {out}" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clips", "demo"]  # no partial folder left behind


@pytest.mark.parametrize("kind", ["file", "full_folder"])
def test_demo_model_never_writes_into_something_that_exists(tmp_path, quick_demo, capsys, kind):
    out = tmp_path / "taken"
    if kind == "file":
        out.write_text("precious")
    else:
        out.mkdir()
        (out / "precious.txt").write_text("precious")
    assert main(["demo-model", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: OUT ") and err.count("\n") == 1
    assert "precious" in (out.read_text() if kind == "file" else (out / "precious.txt").read_text())


# ---------------------------------------------------------------- batch finds its workflow


def test_batch_default_workflow_is_part_of_the_package():
    from consisid_core.cli.batch import DEFAULT_WORKFLOW

    package = REPO / "consisid_core"
    assert Path(DEFAULT_WORKFLOW).is_file() and package in Path(DEFAULT_WORKFLOW).parents


def test_readme_documents_the_newcomer_path_with_commands_that_parse():
    import shlex

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "The whole suite takes about 20 minutes on 2 cores" in readme
    commands = [line.split("#")[0] for line in readme.splitlines() if line.startswith("consisid ")]
    assert any(c.startswith("consisid demo-model") for c in commands), commands
    for command in commands:
        argv = shlex.split(command)[1:]
        build_parser(argv[0], prog="consisid").parse_args(argv)  # an option the command lacks exits with 2


def test_demo_model_eval_dir_gives_what_evaluate_looks_for(tmp_path, quick_demo, monkeypatch, capsys):
    import functools

    import consisid_core.demo.metrics_models as metrics_models
    from consisid_core.cli.demo_model import FACE
    from consisid_core.metrics.files import locate_eval_files

    small = functools.partial(metrics_models.write_eval_models, ir_units=(1, 1, 1, 1))  # a shallow IR: seconds
    monkeypatch.setattr(metrics_models, "write_eval_models", small)
    out, eval_dir = tmp_path / "demo", tmp_path / "eval"
    assert main(["demo-model", str(out), "--eval-dir", str(eval_dir)]) == 0
    found = locate_eval_files(out, eval_dir)  # the resolver `evaluate --model OUT --eval-dir EVAL` uses
    assert found.ir101.parent == out / "face_encoder" and found.inception.parent == eval_dir
    assert (out / FACE).is_file() and f"--faces {out / FACE}" in capsys.readouterr().out
    assert model_status.deep_check(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "eval"]
