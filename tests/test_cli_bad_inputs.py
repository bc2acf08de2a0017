"""Bad input to evaluate, prepare-data and train (and the shared rules): one `error:` line, exit code 2, nothing
overwritten or written into the wrong place, and no model loaded (every loader is replaced by one that fails)."""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FACE = REPO / "consisid_core" / "assets" / "default_face.png"
LOADED = "a model loader ran"  # what the fake loaders say: a refused case must never print it


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    import warnings

    from consisid_core.cli import main

    formatter = warnings.formatwarning
    try:
        code = main(list(argv))
    finally:
        warnings.formatwarning = formatter
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _refused(code: int, err: str, message: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert LOADED not in err, "the input was refused only after a model loader ran"
    assert message in lines[0], err


class Files:
    """A scratch tree: a config-only model, a dataset folder, videos, clips, and files that must survive."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.model = root / "model"
        (self.model / "transformer").mkdir(parents=True)
        (self.model / "vae").mkdir()
        (self.model / "transformer" / "config.json").write_text(json.dumps({
            "sample_width": 90, "sample_height": 60, "sample_frames": 49, "patch_size": 2,
            "num_attention_heads": 48, "attention_head_dim": 64,
            "use_rotary_positional_embeddings": True, "use_learned_positional_embeddings": True}))
        (self.model / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [128, 256, 256, 512]}))
        (self.model / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"the model's weights")
        self.precious = root / "precious.mp4"
        self.precious.write_bytes(b"a video that must survive")
        self.videos = root / "videos"
        self.videos.mkdir()
        (self.videos / "alice.mp4").write_bytes(b"not scored: the loaders stop first")
        self.clips = root / "clips"
        self.clips.mkdir()
        (self.clips / "alice.mp4").write_bytes(b"x")
        self.data = root / "dataset"
        self.data.mkdir()
        (self.data / "dataset.json").write_text(json.dumps({"format": 1, "height": 60, "width": 90, "frames": 49}))
        self.stranger = root / "someone_elses"
        self.stranger.mkdir()
        (self.stranger / "notes.txt").write_text("mine")

    def snapshot(self) -> dict[Path, tuple[bytes, int]]:
        return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(self.root.rglob("*")) if p.is_file()}


@pytest.fixture
def files(tmp_path, monkeypatch):
    """The scratch tree; every model loader of the commands raises (so a case that gets that far shows it)."""
    import consisid_core.engine.loading as loading
    import consisid_core.face as face
    import consisid_core.metrics as metrics
    import consisid_core.training.components as components
    from consisid_core.errors import ConsisIDError

    def loader(*args, **kwargs):
        raise ConsisIDError(LOADED)

    for module, name in ((loading, "load_engine"), (face, "load_face_models"), (metrics, "load_eval_models"),
                         (components, "model_files"), (components, "load_text"), (components, "load_vae")):
        monkeypatch.setattr(module, name, loader)
    monkeypatch.chdir(tmp_path)
    return Files(tmp_path)


@pytest.fixture
def no_training(monkeypatch):
    """`train` reaches the trainer only after every check: replace it with the failing loader."""
    import consisid_core.training.trainer as trainer
    from consisid_core.errors import ConsisIDError

    def loader(*args, **kwargs):
        raise ConsisIDError(LOADED)

    monkeypatch.setattr(trainer, "train", loader)


def _read_only(monkeypatch, folder: Path) -> None:
    """A read-only mount under `folder` (root ignores chmod, so the probe file is refused as EROFS would be)."""
    import consisid_core.output_paths as output_paths

    real = output_paths._make_probe
    folder = folder.resolve()

    def probe(where: Path) -> None:
        where = Path(where).resolve()
        if where == folder or folder in where.parents:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real(where)

    monkeypatch.setattr(output_paths, "_make_probe", probe)


# ---------------------------------------------------------------- evaluate


def _evaluate(capsys, files: Files, *argv: str) -> tuple[int, str, str]:
    base = ["evaluate", "--videos", str(files.videos), "--faces", str(FACE), "--model", str(files.model)]
    return _main(capsys, *base, *argv)


EVALUATE = [
    (["--out", "{precious}"], "--out {precious} must end in .csv"),
    (["--out", "{videos}"], "--out {videos} is a folder; give a file name inside it, e.g. {videos}/scores.csv"),
    (["--out", "{old_csv}"], "--out {old_csv} already exists; pass --overwrite"),
    (["--out", "{model}/scores.csv"], "is inside the model folder"),
    (["--out", "{precious}/s.csv"], "because {precious} is a file"),
    (["--plot", "{precious}"], "--plot {precious} is a file, not a folder"),
    (["--plot", "{plots}"], "{plots}/alice.png already exists; pass --overwrite"),
    (["--prompts", "{latin1}"], "--prompts {latin1} is not UTF-8: line 2 has byte 0xe9"),
    (["--prompts", "{utf16}"], "--prompts {utf16} is UTF-16 text; save it as UTF-8"),
    (["--prompts", "{root}/missing.csv"], "does not exist"),
]


@pytest.mark.parametrize("argv, message", EVALUATE, ids=[" ".join(a) for a, _ in EVALUATE])
def test_evaluate_bad_input_is_refused_before_scoring(capsys, files, argv, message):
    (files.root / "old.csv").write_text("earlier scores")
    (files.root / "plots").mkdir()
    (files.root / "plots" / "alice.png").write_bytes(b"an earlier plot")
    (files.root / "latin1.csv").write_bytes("video,prompt\nalice,un caf\xe9\n".encode("latin-1"))
    (files.root / "utf16.csv").write_bytes("video,prompt\nalice,a walk\n".encode("utf-16"))
    fill = {"precious": files.precious, "videos": files.videos, "old_csv": files.root / "old.csv", "model": files.model,
            "plots": files.root / "plots", "latin1": files.root / "latin1.csv", "utf16": files.root / "utf16.csv",
            "root": files.root}
    before = files.snapshot()
    args = [a.format(**fill) for a in argv]
    if "--out" not in args:
        args += ["--out", str(files.root / "new.csv")]
    code, _, err = _evaluate(capsys, files, *args)
    _refused(code, err, message.format(**fill))
    assert files.snapshot() == before, "a file was touched"
    assert not (files.root / "new.csv").exists()


def test_evaluate_accepts_utf8_with_a_bom_and_overwrite_then_reaches_the_loader(capsys, files):
    (files.root / "bom.csv").write_bytes("video,prompt\nalice,un café\n".encode("utf-8-sig"))
    (files.root / "old.csv").write_text("earlier scores")
    code, _, err = _evaluate(capsys, files, "--prompts", str(files.root / "bom.csv"), "--out",
                             str(files.root / "old.csv"), "--overwrite")
    assert code == 2 and LOADED in err, err  # every check passed


def test_evaluate_read_only_out_is_refused_before_scoring(capsys, files, monkeypatch):
    mount = files.root / "mount"
    mount.mkdir()
    _read_only(monkeypatch, mount)
    code, _, err = _evaluate(capsys, files, "--out", str(mount / "scores.csv"))
    _refused(code, err, f"cannot write in {mount} (Read-only file system)")
    code, _, err = _evaluate(capsys, files, "--out", str(files.root / "s.csv"), "--plot", str(mount / "plots"))
    _refused(code, err, f"--plot {mount / 'plots'}: cannot write in {mount}")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into a chmod 555 folder anyway")
def test_evaluate_out_in_a_folder_without_write_permission(capsys, files):
    locked = files.root / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = _evaluate(capsys, files, "--out", str(locked / "scores.csv"))
    finally:
        locked.chmod(0o755)
    _refused(code, err, "Permission denied")


def test_evaluate_device_cuda_on_cpu_torch_is_one_line(capsys, files, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = _evaluate(capsys, files, "--device", "cuda", "--out", str(files.root / "s.csv"))
    _refused(code, err, "device 'cuda' was requested but torch sees no CUDA GPU")


def test_scores_csv_goes_through_a_partial_file_and_keeps_an_existing_one(tmp_path, monkeypatch):
    import consisid_core.metrics.report as report
    from consisid_core.errors import ConsisIDError
    from consisid_core.metrics.folder import FolderScores

    out = tmp_path / "scores.csv"
    report.write_csv(out, FolderScores("consisid"), overwrite=False)
    assert out.read_text(encoding="utf-8").startswith("output_path,face,prompt") and os.listdir(tmp_path) == ["scores.csv"]
    with pytest.raises(ConsisIDError, match="appeared while this command ran"):
        report.write_csv(out, FolderScores("consisid"), overwrite=False)
    out.write_text("earlier")

    def broken(path, scores):
        Path(path).write_text("half a tab")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "_write_rows", broken)
    with pytest.raises(ConsisIDError, match="could not be written \\(No space left on device\\); nothing was replaced"):
        report.write_csv(out, FolderScores("consisid"), overwrite=True)
    assert out.read_text() == "earlier" and os.listdir(tmp_path) == ["scores.csv"]


# ---------------------------------------------------------------- prepare-data


def _prepare(capsys, files: Files, *argv: str) -> tuple[int, str, str]:
    args = ["prepare-data", "--model", str(files.model), *argv]
    if "--clips" not in args:
        args += ["--clips", str(files.clips)]
    return _main(capsys, *args)


PREPARE = [
    (["--out", "{model}"], "--out {model} is the model folder; write results elsewhere"),
    (["--out", "{model}/dataset"], "--out {model}/dataset is inside the model folder"),
    (["--out", "{precious}"], "--out {precious} is a file, not a folder"),
    (["--out", "{stranger}"], "already holds other files and is not a dataset made by prepare-data"),
    (["--out", "{clips}/dataset"], "is inside the --clips folder"),
    (["--out", "{new}", "--captions", "{latin1}"], "--captions {latin1} is not UTF-8: line 2 has byte 0xe9"),
    (["--out", "{new}", "--captions", "{utf16}"], "--captions {utf16} is UTF-16 text"),
    (["--out", "{new}", "--clips", "{empty}"], "--clips {empty} holds no clips"),
    (["--out", "{new}", "--face-selection", "tallest"], "face_selection must be one of"),
    (["--out", "{new}", "--min-face-fraction", "nan"], "--min-face-fraction must be a finite number above 0 and at most 1"),
    (["--out", "{new}", "--stride", "0"], "--stride must be a whole number 1 or more"),
]


@pytest.mark.parametrize("argv, message", PREPARE, ids=[" ".join(a) for a, _ in PREPARE])
def test_prepare_data_bad_input_is_refused_before_any_model(capsys, files, argv, message):
    (files.root / "latin1.csv").write_bytes("clip,caption\nalice.mp4,un caf\xe9\n".encode("latin-1"))
    (files.root / "utf16.csv").write_bytes("clip,caption\nalice.mp4,a walk\n".encode("utf-16"))
    (files.root / "empty").mkdir()
    fill = {"model": files.model, "precious": files.precious, "stranger": files.stranger, "clips": files.clips,
            "new": files.root / "new_dataset", "latin1": files.root / "latin1.csv", "utf16": files.root / "utf16.csv",
            "empty": files.root / "empty"}
    before = files.snapshot()
    code, _, err = _prepare(capsys, files, *[a.format(**fill) for a in argv])
    _refused(code, err, message.format(**fill))
    assert files.snapshot() == before and not (files.root / "new_dataset").exists(), "something was written"
    assert sorted(p.name for p in files.model.iterdir()) == ["transformer", "vae"]


def test_prepare_data_read_only_out_is_refused(capsys, files, monkeypatch):
    mount = files.root / "mount"
    mount.mkdir()
    _read_only(monkeypatch, mount)
    code, _, err = _prepare(capsys, files, "--out", str(mount / "dataset"))
    _refused(code, err, f"--out {mount / 'dataset'}: cannot write in {mount} (Read-only file system)")


def test_prepare_data_good_input_reaches_the_loader(capsys, files):
    (files.root / "captions.csv").write_bytes("clip,caption\nalice.mp4,un café\n".encode("utf-8-sig"))
    code, _, err = _prepare(capsys, files, "--out", str(files.root / "new"), "--captions", str(files.root / "captions.csv"))
    assert code == 2 and LOADED in err, err
    assert not (files.root / "new").exists()


def test_a_caption_file_that_is_not_utf8_skips_its_clip_with_the_reason(tmp_path):
    from consisid_core.training.captions import caption_for
    from consisid_core.training.clips import ClipError, ClipSource

    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "a.txt").write_bytes("un caf\xe9".encode("latin-1"))
    with pytest.raises(ClipError, match=r"a\.txt is not UTF-8: line 1 has byte 0xe9"):
        caption_for(ClipSource(tmp_path / "a.mp4", "video"), {}, None)


# ---------------------------------------------------------------- train


def _train(capsys, files: Files, *argv: str) -> tuple[int, str, str]:
    args = ["train", "--model", str(files.model), *argv]
    if "--data" not in args:
        args += ["--data", str(files.data)]
    if "--out" not in args:
        args += ["--out", str(files.root / "run")]
    return _main(capsys, *args)


TRAIN = [
    (["--out", "{model}", "--full", "--max-steps", "1"], "--out {model} is the model folder; write results elsewhere"),
    (["--out", "{model}/run"], "is inside the model folder"),
    (["--out", "{precious}"], "--out {precious} is a file, not a folder"),
    (["--out", "{data}/run"], "is inside the --data folder"),
    (["--out", "{stranger}"], "already holds other files and is not a run folder"),
    (["--lr", "nan"], "--lr must be a finite number above 0 and at most 1"),
    (["--lr", "inf"], "--lr must be a finite number above 0 and at most 1"),
    (["--lr", "0"], "--lr must be a finite number above 0"),
    (["--lora-alpha", "0"], "--lora-alpha must be a finite number above 0"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be a whole number 1 or more"),
    (["--keep-checkpoints", "-1"], "--keep-checkpoints must be a whole number 0 or more"),
    (["--coarse-steps", "10", "--max-steps", "10"], "--coarse-steps 10 makes the whole run coarse"),
    (["--lora-rank", "5000"], "--lora-rank 5000 is above the width of the layers it adapts (3072); use 1 to 3072"),
    (["--mask-prob", "nan"], "--mask-prob must be a finite number from 0 to 1"),
    (["--text-dropout", "1.5"], "--text-dropout must be a finite number from 0 to 1"),
    (["--face-lr-mult", "inf"], "--face-lr-mult must be a finite number above 0"),
    (["--validate", "2"], "--validate needs --validate-face PHOTO"),
    (["--data", "{stranger}"], "{stranger} is not a prepared dataset (no dataset.json)"),
    (["--data", "{bad_data}"], "--data {bad_data}: dataset.json cannot be read"),
    (["--validate", "2", "--validate-face", "{face}", "--validate-prompt", " "], "--validate-prompt is empty"),
]


@pytest.mark.parametrize("argv, message", TRAIN, ids=[" ".join(a) for a, _ in TRAIN])
def test_train_bad_input_is_refused_before_any_model(capsys, files, no_training, argv, message):
    (files.root / "bad_data").mkdir()
    (files.root / "bad_data" / "dataset.json").write_text('{"format": 1, "hei')
    fill = {"model": files.model, "precious": files.precious, "data": files.data, "stranger": files.stranger,
            "face": FACE, "bad_data": files.root / "bad_data"}
    before = files.snapshot()
    code, _, err = _train(capsys, files, *[a.format(**fill) for a in argv])
    _refused(code, err, message.format(**fill))
    assert files.snapshot() == before, "a file was touched"
    assert not (files.root / "run").exists()
    assert sorted(p.name for p in files.model.rglob("*")) == [
        "config.json", "config.json", "diffusion_pytorch_model.safetensors", "transformer", "vae"]


def test_train_read_only_out_is_refused(capsys, files, no_training, monkeypatch):
    mount = files.root / "mount"
    mount.mkdir()
    _read_only(monkeypatch, mount)
    code, _, err = _train(capsys, files, "--out", str(mount / "run"))
    _refused(code, err, f"--out {mount / 'run'}: cannot write in {mount} (Read-only file system)")


def _checkpoint(run: Path, step: int, state: str | None) -> Path:
    folder = run / "checkpoints" / f"step-{step:07d}"
    folder.mkdir(parents=True)
    (folder / "trainable.safetensors").write_bytes(b"weights")
    (folder / "training_state.pt").write_bytes(b"optimizer")
    if state is not None:
        (folder / "state.json").write_text(state)
    return folder


def test_train_resuming_from_a_damaged_checkpoint_is_one_line(capsys, files, no_training):
    run = files.root / "run"
    folder = _checkpoint(run, 4, '{"step": 4, "posi')
    code, _, err = _train(capsys, files)
    _refused(code, err, f"checkpoint {folder} is damaged (state.json cannot be read")
    assert "--no-resume to start over" in err
    code, _, err = _train(capsys, files, "--no-resume")
    assert code == 2 and LOADED in err, err  # starting over does not read it


def test_train_resuming_from_a_checkpoint_of_other_settings_is_refused_before_loading(capsys, files, no_training):
    from consisid_core.training.recipe import TrainConfig

    saved = TrainConfig(learning_rate=1e-3).to_dict()
    _checkpoint(files.root / "run", 2, json.dumps({"step": 2, "position": 2, "config": saved, "losses": [1.0, 0.9]}))
    code, _, err = _train(capsys, files, "--lr", "1e-4")
    _refused(code, err, "was written by a run with other settings (learning_rate)")
    code, _, err = _train(capsys, files, "--lr", "1e-3")
    assert code == 2 and LOADED in err, err


def test_train_keeps_a_finished_result_unless_overwrite(capsys, files, no_training):
    run = files.root / "run"
    run.mkdir()
    (run / "pytorch_lora_weights.safetensors").write_bytes(b"an earlier LoRA")
    code, _, err = _train(capsys, files)
    _refused(code, err, f"--out {run} already holds a finished run (pytorch_lora_weights.safetensors); pass --overwrite")
    code, _, err = _train(capsys, files, "--overwrite")
    assert code == 2 and LOADED in err, err
    assert (run / "pytorch_lora_weights.safetensors").read_bytes() == b"an earlier LoRA"


def test_damaged_checkpoint_files_are_one_clear_error(tmp_path):
    from consisid_core.training import checkpoints

    folder = _checkpoint(tmp_path, 1, json.dumps({"step": 1, "position": 1, "config": {}, "losses": []}))
    with pytest.raises(checkpoints.CheckpointError, match="is damaged \\(SafetensorError|is damaged \\(.*Error"):
        checkpoints.load(folder, None, None, None, {})
    (folder / "training_state.pt").unlink()
    with pytest.raises(checkpoints.CheckpointError, match="training_state.pt is missing"):
        checkpoints.read_state(folder)


# ---------------------------------------------------------------- the shared rules


def test_text_files_are_utf8_with_or_without_bom_or_refused_with_line_and_byte(tmp_path):
    from consisid_core.text_input import TextInputError, read_text_file

    path = tmp_path / "t.txt"
    for data in ("ein Café\n".encode(), "ein Café\n".encode("utf-8-sig")):
        path.write_bytes(data)
        assert read_text_file(path, "--x") == "ein Café\n"
    path.write_bytes("ok\nok\nein Caf\xe9\n".encode("cp1252"))
    with pytest.raises(TextInputError, match=r"^--x .*t\.txt is not UTF-8: line 3 has byte 0xe9 \('é'"):
        read_text_file(path, "--x")
    for encoding, name in (("utf-16", "UTF-16"), ("utf-32", "UTF-32")):
        path.write_bytes("a".encode(encoding))
        with pytest.raises(TextInputError, match=f"is {name} text"):
            read_text_file(path, "--x")


@pytest.mark.parametrize("prompt, problem", [
    ("", "is empty"), ("   \n\t", "is empty"), (b"\xff\xfe".decode("utf-8", "surrogateescape"), "holds byte 0xff at character 1"),
    ("caf" + b"\xe9".decode("utf-8", "surrogateescape"), "holds byte 0xe9 at character 4"), (None, "must be text"),
])
def test_prompt_problems(prompt, problem):
    from consisid_core.text_input import prompt_problem

    assert problem in prompt_problem(prompt)
    assert prompt_problem("a person smiles") is None


def test_numbers_must_be_finite_even_without_a_bound():
    from consisid_core import validate
    from consisid_core.errors import UnsupportedInputError

    for value, bounds in ((float("nan"), ()), (float("inf"), (0.0,)), (float("-inf"), (None, 1.0))):
        with pytest.raises(UnsupportedInputError, match="must be a finite number"):
            validate.check_number(value, "--x", *bounds)
    assert validate.check_number(2.5, "--x", 0.0, low_open=True) == 2.5


def test_output_paths_never_replace_a_file_or_write_into_a_model(tmp_path):
    from consisid_core import output_paths as op
    from consisid_core.errors import ConsisIDError

    (tmp_path / "model").mkdir()
    kept = tmp_path / "kept.csv"
    kept.write_text("kept")
    with pytest.raises(ConsisIDError, match="already exists; pass --overwrite"):
        op.check_output_file(kept, option="--out")
    assert op.check_output_file(kept, option="--out", overwrite=True) == kept
    with pytest.raises(ConsisIDError, match="is a folder"):
        op.check_output_file(tmp_path, option="--out")
    with pytest.raises(ConsisIDError, match="is inside the model folder"):
        op.check_output_file(tmp_path / "model" / "sub" / "x.csv", option="--out", models=[tmp_path / "model"])
    with pytest.raises(ConsisIDError, match="is the model folder"):  # also through a symlink or `..`
        op.check_output_folder(tmp_path / "other" / ".." / "model", option="--out", models=[tmp_path / "model"])
    with pytest.raises(ConsisIDError, match="is a file, not a folder"):
        op.check_output_folder(kept, option="--out")
    assert kept.read_text() == "kept" and sorted(p.name for p in tmp_path.iterdir()) == ["kept.csv", "model"]


def test_a_result_folder_is_swapped_in_only_when_complete(tmp_path):
    from consisid_core.output_paths import replace_folder_through_partial

    target = tmp_path / "transformer"
    target.mkdir()
    (target / "old-shard.safetensors").write_text("old")

    def broken(partial: Path) -> None:
        partial.mkdir()
        (partial / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        replace_folder_through_partial(target, broken)
    assert [p.name for p in tmp_path.iterdir()] == ["transformer"] and (target / "old-shard.safetensors").exists()

    def good(partial: Path) -> None:
        partial.mkdir()
        (partial / "config.json").write_text("{}")

    replace_folder_through_partial(target, good)
    assert [p.name for p in tmp_path.iterdir()] == ["transformer"] and [p.name for p in target.iterdir()] == ["config.json"]


def test_every_option_of_every_command_has_help_with_its_default():
    from consisid_core.cli import COMMANDS, build_parser

    missing = []
    for name in COMMANDS:
        parser = build_parser(name)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            default = action.default
            trivial = default in (None, False, [], argparse.SUPPRESS) or action.required
            if not action.help or (not trivial and "default" not in action.help.lower()):
                missing.append(f"{name} {'/'.join(action.option_strings)}")
    assert not missing, "options without help or without their default: " + ", ".join(missing)


# ---------------------------------------------------------------- torchrun


def test_a_refusal_under_torchrun_is_one_line_from_rank_0(tmp_path):
    """Each rank refuses before the process group starts; only rank 0 prints, and torchrun's own failure report
    (which it prints for any non-zero exit) carries the message instead of a link."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "consisid_core", "generate", "--random-weights", "--device", "cpu",
           "--cfg-parallel", "--guidance", "nan", "--out", str(tmp_path / "x.mp4")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    ours = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode != 0
    assert ours == ["error: --guidance must be a finite number from 0 to 30 (1 or less turns guidance off; ConsisID "
                    "uses 6); got nan"], result.stderr[-3000:]
    assert "traceback : error: --guidance must be a finite number" in result.stderr  # torchrun's summary
    assert result.stderr.count("Traceback (most recent call last)") <= 1  # torchrun's own, none from our ranks
    assert "build random model" not in result.stdout and not (tmp_path / "x.mp4").exists()


def test_non_utf8_prompt_bytes_on_the_command_line_are_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "LC_ALL": "C.UTF-8"}
    cmd = [sys.executable.encode(), b"-m", b"consisid_core", b"generate", b"--prompt", b"\xff\xfe a walk",
           b"--model", str(tmp_path / "none").encode(), b"--out", str(tmp_path / "x.mp4").encode()]
    result = subprocess.run(cmd, env=env, capture_output=True, timeout=300, cwd=REPO)
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2 and err.strip().count("\n") == 0, err
    assert err.startswith("error: --prompt holds byte 0xff at character 1, which is not UTF-8 text"), err
