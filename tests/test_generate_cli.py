"""`python -m consisid_core generate`: the README's main job, end to end, and its failure messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.bad_files import bomb_png

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "consisid_core", "generate", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


@pytest.mark.slow
def test_random_weights_run_the_whole_path_to_a_playable_mp4(tmp_path):
    """Photo -> identity (full-size random RetinaFace/BiSeNet/EVA, tiny antelopev2) -> tiny DiT with the real
    1280/1024 face-feature sizes -> mp4 at 8 fps with the requested number of frames."""
    from consisid_core.video import count_frames

    out = tmp_path / "demo.mp4"
    result = _run("--random-weights", "--steps", "2", "--frames", "9", "--out", str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "RANDOM WEIGHTS" in result.stdout and "NOISE" in result.stdout
    for stage in ("load face models", "extract identity", "load video model", "generate", "write mp4"):
        assert f"[{stage}] done in" in result.stdout
    assert out.is_file() and count_frames(out) == 9
    assert "wrote" in result.stdout and "9 frames, 384x256, 8 fps" in result.stdout


def test_missing_weights_give_one_message_not_a_traceback(tmp_path):
    result = _run("--model", str(tmp_path / "ConsisID-preview"), "--out", str(tmp_path / "x.mp4"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "the model is not ready" in result.stderr
    assert "detection_Resnet50_Final.pth" in result.stderr and "huggingface.co/BestWishYsh/ConsisID-preview" in result.stderr
    assert "--random-weights" in result.stderr


def test_download_offline_fails_clearly(tmp_path):
    result = _run("--model", str(tmp_path / "m"), "--download", "--out", str(tmp_path / "x.mp4"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "could not download BestWishYsh/ConsisID-preview" in result.stderr and "run the same command again" in result.stderr


def test_download_fetches_only_what_the_pack_uses():
    from consisid_core.download import ALLOW_PATTERNS

    assert "transformer/*" in ALLOW_PATTERNS and "face_encoder/models/antelopev2/glintr100.onnx" in ALLOW_PATTERNS
    assert not any("parsenet" in p or "data_process" in p or "curricular" in p for p in ALLOW_PATTERNS)


# ---------------------------------------------------------------- bad input: one line, exit 2, before any model


def _model_configs(folder: Path) -> Path:
    """A folder with only the two config.json files (the ConsisID-preview values that matter for sizes)."""
    (folder / "transformer").mkdir(parents=True)
    (folder / "vae").mkdir()
    (folder / "transformer" / "config.json").write_text(json.dumps({
        "sample_width": 90, "sample_height": 60, "sample_frames": 49, "patch_size": 2,
        "use_rotary_positional_embeddings": True, "use_learned_positional_embeddings": True}))
    (folder / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [128, 256, 256, 512]}))
    return folder


def _main(capsys, *args: str) -> tuple[int, str, str]:
    import warnings

    from consisid_core.cli import main

    formatter = warnings.formatwarning  # the CLI prints the pack's warnings in one line; keep pytest's as it was
    try:
        code = main(["generate", *args])
    finally:
        warnings.formatwarning = formatter
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cli_files(tmp_path, monkeypatch):
    """A config-only model folder, an existing video, a plain file and a folder; loading any model is an error."""
    import consisid_core.engine.loading as loading
    import consisid_core.face as face

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded although the input was bad")

    monkeypatch.setattr(loading, "load_engine", no_loading)
    monkeypatch.setattr(face, "load_face_models", no_loading)
    files = {"model": _model_configs(tmp_path / "model"), "dir": tmp_path / "folder", "file": tmp_path / "plain"}
    files["dir"].mkdir()
    files["file"].write_text("x")
    files["video"] = tmp_path / "old.mp4"
    files["video"].write_bytes(b"an earlier video")
    files["bomb"] = bomb_png(tmp_path / "bomb.png")
    return files


BAD_GENERATE = [
    (["--face", "{bomb}"], "decompression bomb"),
    (["--face", sys.executable], "is not an image PIL can read"),
    (["--face", "{dir}/missing.png"], "does not exist"),
    (["--out", "{dir}"], "is a folder; give a file name inside it"),
    (["--out", "{file}/x.mp4"], "because {file} is a file"),
    (["--out", "{video}"], "already exists; pass --overwrite"),
    (["--out", "{dir}/x.avi"], "must end in .mp4"),
    (["--device", "tpu"], "device 'tpu' is not"),
    (["--fps", "-1"], "fps must be a number above 0"),
    (["--fps", "0"], "fps must be a number above 0"),
    (["--frames", "10000"], "num_frames=10000 is outside what this checkpoint supports: use 8k+1 frames from 9 to 193"),
    (["--frames", "0"], "--frames must be a positive"),
    (["--frames", "-5"], "--frames must be a positive"),
    (["--width", "0"], "--width must be a positive multiple of 16"),
    (["--width", "640"], "only generates 720x480"),
    (["--steps", "0"], "num_inference_steps must be an integer from 1 to 1000"),
    (["--face-selection", "tallest"], "face_selection must be one of"),
    (["--antelopev2-dir", "{dir}/nowhere"], "--antelopev2-dir"),
    (["--prompt", ""], "--prompt is empty"),
    (["--prompt", "  \t "], "--prompt is empty"),
    (["--prompt", "caf" + b"\xe9".decode("utf-8", "surrogateescape")], "--prompt holds byte 0xe9 at character 4"),
    (["--negative-prompt", b"\xff".decode("utf-8", "surrogateescape")], "--negative-prompt holds byte 0xff"),
    (["--guidance", "nan"], "--guidance must be a finite number from 0 to 30"),
    (["--guidance", "inf"], "--guidance must be a finite number from 0 to 30"),
    (["--guidance", "-1"], "--guidance must be a finite number from 0 to 30"),
    (["--lora", "{video}:nan"], "strength must be a finite number from -4 to 4"),
    (["--lora", "{video}:inf"], "strength must be a finite number from -4 to 4"),
    (["--cfg-parallel", "--guidance", "1"], "--cfg-parallel runs the two classifier-free-guidance branches"),
    (["--teacache", "0.1", "--teacache-start", "50"], "--teacache-start 50 is at or past the last step (--steps 50"),
    (["--out", "{model}/v.mp4"], "--out {model}/v.mp4 is inside the model folder"),
    (["--out", "{model}"], "--out {model} is a folder"),
]


@pytest.mark.parametrize("args, message", BAD_GENERATE, ids=[" ".join(a) for a, _ in BAD_GENERATE])
def test_bad_generate_input_is_refused_in_one_line_before_any_model(capsys, cli_files, args, message):
    fill = {k: str(v) for k, v in cli_files.items()}
    args = [a.format(**fill) for a in args]
    defaults = {"--model": fill["model"], "--out": fill["dir"] + "/new.mp4"}
    for option, value in defaults.items():
        if option not in args:
            args += [option, value]
    code, out, err = _main(capsys, *args)
    assert code == 2, out + err
    assert message.format(**fill) in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert cli_files["video"].read_bytes() == b"an earlier video", "an existing file was touched"
    assert not (cli_files["dir"] / "new.mp4").exists()
    assert sorted(p.name for p in cli_files["model"].rglob("*")) == ["config.json", "config.json", "transformer", "vae"]


def test_read_only_out_is_refused_before_any_model(capsys, cli_files, monkeypatch):
    """Root writes through chmod, so a read-only mount is simulated where the probe file is created."""
    import errno

    import consisid_core.output_paths as output_paths

    def read_only(folder):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(output_paths, "_make_probe", read_only)
    out = cli_files["dir"] / "v.mp4"
    code, _, err = _main(capsys, "--model", str(cli_files["model"]), "--out", str(out))
    assert code == 2 and err.startswith(f"error: --out {out}: cannot write in {cli_files['dir']} (Read-only file system)")
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_teacache_notes_instead_of_silence(capsys, cli_files):
    code, out, err = _main(capsys, "--model", str(cli_files["model"]), "--teacache-start", "3",
                           "--out", str(cli_files["dir"] / "v.mp4"))
    assert "note: --teacache-start/--teacache-end do nothing without --teacache THRESH" in out
    assert code == 2 and "the model is not ready" in err  # got past the settings to the file check
    code, out, err = _main(capsys, "--model", str(cli_files["model"]), "--teacache", "0.1", "--teacache-end", "80",
                           "--out", str(cli_files["dir"] / "v.mp4"))
    assert "note: --teacache-end 80 is past the last step (49); caching runs to the end" in out
    assert code == 2 and "the model is not ready" in err


def test_device_cuda_on_a_cpu_only_torch(capsys, cli_files, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = _main(capsys, "--model", str(cli_files["model"]), "--device", "cuda", "--out", str(cli_files["dir"] / "v.mp4"))
    assert code == 2 and "device 'cuda' was requested but" in err and "use device 'cpu'" in err
    assert len(err.strip().splitlines()) == 1


def test_huge_seed_is_taken_modulo_2_64(capsys, cli_files):
    """The settings pass; the run then stops at the file check (the folder has only configs)."""
    code, out, err = _main(capsys, "--model", str(cli_files["model"]), "--seed", str(2**64 + 5), "--out", str(cli_files["dir"] / "v.mp4"))
    assert f"seed {2**64 + 5} is outside 0..2^64-1; using {2**64 + 5} mod 2^64 = 5" in out
    assert code == 2 and "the model is not ready" in err and "Overflow" not in err


def test_near_miss_frames_are_snapped_with_a_warning(capsys, cli_files):
    from consisid_core.notices import ConsisIDWarning

    with pytest.warns(ConsisIDWarning, match="num_frames=50 would not decode to exactly that many frames.*Using 49"):
        code, _, err = _main(capsys, "--model", str(cli_files["model"]), "--frames", "50", "--out", str(cli_files["dir"] / "v.mp4"))
    assert code == 2 and "the model is not ready" in err  # got past the settings to the file check


def test_antelopev2_dir_without_the_files_is_an_error_not_ignored(capsys, cli_files, tmp_path):
    """The model's own antelopev2 is complete; an explicit --antelopev2-dir that lacks the files must not fall back on it."""
    from consisid_core import catalog

    model = cli_files["model"]
    face_dir = model / "face_encoder"
    ante = face_dir.joinpath(*catalog.ANTELOPEV2_SUBDIR)
    ante.mkdir(parents=True)
    for name in (catalog.RETINAFACE_FILE, catalog.BISENET_FILE, catalog.EVA_CLIP_FILE):
        (face_dir / name).write_bytes(b"x")
    for name in catalog.ANTELOPEV2_USED:
        (ante / name).write_bytes(b"x")
    empty = tmp_path / "empty_antelopev2"
    empty.mkdir()
    code, _, err = _main(capsys, "--model", str(model), "--antelopev2-dir", str(empty), "--out", str(tmp_path / "v.mp4"))
    assert code == 2 and f"--antelopev2-dir {empty} holds no scrfd_10g_bnkps.onnx" in err, err


def test_no_temporary_folder_without_random_weights(capsys, cli_files, tmp_path, monkeypatch):
    """A temporary folder is made only for --random-weights (a kill could not remove it)."""
    import tempfile

    made = []
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(real_mkdtemp(*a, **k)) or made[-1])
    code, _, _ = _main(capsys, "--model", str(cli_files["model"]), "--out", str(cli_files["dir"] / "v.mp4"))
    assert code == 2 and made == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_interrupted_random_weights_run_leaves_no_temporary_folder(tmp_path, sig):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "TMPDIR": str(scratch), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "consisid_core", "generate", "--random-weights", "--out", str(tmp_path / "v.mp4")],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # interrupt while the random model is being written into the temporary folder
        if "[build random model] ..." in line or time.monotonic() > deadline:
            break
    while not any(scratch.glob("consisid_random_*/*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest[-2000:]
    assert "interrupted" in rest and "Traceback" not in rest
    assert not list(scratch.glob("consisid_random_*")), "the temporary model folder was left behind"
    assert not (tmp_path / "v.mp4").exists()


def test_video_is_written_through_a_partial_file_and_never_replaces_without_overwrite(tmp_path):
    import numpy as np

    from consisid_core.cli.output import write_video_file
    from consisid_core.errors import ConsisIDError
    from consisid_core.video import count_frames

    frames = np.zeros((9, 16, 16, 3), dtype=np.uint8)
    out = write_video_file(frames, tmp_path / "sub" / "v.mp4", fps=8)
    assert count_frames(out) == 9 and sorted(p.name for p in out.parent.iterdir()) == ["v.mp4"]
    before = out.read_bytes()
    with pytest.raises(ConsisIDError, match="already exists; pass --overwrite"):
        write_video_file(frames[:5], out, fps=8)
    assert out.read_bytes() == before
    write_video_file(frames[:5], out, fps=8, overwrite=True)
    assert count_frames(out) == 5 and sorted(p.name for p in out.parent.iterdir()) == ["v.mp4"]


def test_a_failed_encode_keeps_the_earlier_video_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import numpy as np

    import consisid_core.video as video
    from consisid_core.cli.output import write_video_file

    out = tmp_path / "v.mp4"
    out.write_bytes(b"the earlier video")

    def broken_encoder(frames, path, fps):
        Path(path).write_bytes(b"half a video")
        raise RuntimeError("ffmpeg died")

    monkeypatch.setattr(video, "write_mp4", broken_encoder)
    with pytest.raises(RuntimeError, match="ffmpeg died"):
        write_video_file(np.zeros((9, 16, 16, 3), dtype=np.uint8), out, fps=8, overwrite=True)
    assert out.read_bytes() == b"the earlier video" and [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_long_prompt_warning_shows_only_the_start_of_the_dropped_text(tiny_model):
    import torch
    from transformers import PreTrainedTokenizerFast

    from consisid_core.engine.text import encode_prompt
    from consisid_core.notices import ConsisIDWarning

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tiny_model / "tokenizer" / "tokenizer.json"))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or "<pad>"
    prompt = " ".join(["a man walks in the city street at night"] * 400)  # ~3,600 words
    with pytest.warns(ConsisIDWarning) as caught:
        encode_prompt(tokenizer, lambda ids: (torch.zeros(1, ids.shape[1], 4),), prompt, 16, torch.device("cpu"), torch.float32)
    message = str(caught[0].message)
    assert "was cut; dropped: " in message and "more characters)" in message
    assert len(message) < 300, len(message)


# ---------------------------------------------------------------- check-models --extra-model-paths


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("a: [1, 2\nb: c\n", "not valid YAML on line 2"),
    ("- a\n- b\n", "expected sections of `key: folder` lines"),
    (b"comfyui:\n  base_path: /caf\xe9\n", "not UTF-8 text"),
])
def test_check_models_bad_extra_model_paths_is_one_line(capsys, tmp_path, content, message):
    from consisid_core.cli import main

    yaml_path = tmp_path / "extra_model_paths.yaml"
    if isinstance(content, bytes):
        yaml_path.write_bytes(content)
    elif content is not None:
        yaml_path.write_text(content)
    code = main(["check-models", "--models-dir", str(tmp_path), "--extra-model-paths", str(yaml_path)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_check_models_accepts_a_comfyui_style_extra_model_paths(capsys, tmp_path):
    from consisid_core.cli import main

    yaml_path = tmp_path / "extra_model_paths.yaml"
    yaml_path.write_text("comfyui:\n  base_path: elsewhere\n  consisid: models/consisid\nempty_section:\n")
    code = main(["check-models", "--models-dir", str(tmp_path), "--extra-model-paths", str(yaml_path)])
    assert code == 1 and "error:" not in capsys.readouterr().err  # 1: no complete model folder, reported normally


@pytest.mark.parametrize("argv, message", [
    (["generate", "--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
    (["batch", "--jobs", "x.csv"], "the following arguments are required: --out"),
])
def test_option_errors_are_one_line(capsys, argv, message):
    from consisid_core.cli import main

    with pytest.raises(SystemExit) as caught:
        main(argv)
    err = capsys.readouterr().err
    assert caught.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
