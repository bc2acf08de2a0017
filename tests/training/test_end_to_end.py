"""prepare -> 30 LoRA steps -> the LoRA in the canvas stand-in (ComfyUI graph), and the CLI commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import comfy_stub
from comfy_stub import core_nodes, harness
from support.node_graph import nodes_of, tiny_prompt
from support.pack import import_pack, pack_module

LORA_FILE = "astronaut_lora.safetensors"


@pytest.fixture(scope="module")
def canvas(comfy_base, lora_run):
    """The ComfyUI stand-in on the training tests' tiny model, with the trained LoRA in models/consisid_loras/."""
    base = comfy_base
    (base / "models" / "consisid_loras").mkdir(parents=True, exist_ok=True)
    shutil.copy(lora_run[3].lora_path, base / "models" / "consisid_loras" / LORA_FILE)
    comfy_stub.activate(base)
    import_pack()
    pack_module("nodes.comfy_bridge").register_model_folders()
    mappings = {**pack_module("nodes").NODES_BY_ID, **core_nodes.MAPPINGS}
    yield lambda prompt: harness.execute(prompt, mappings)
    pack_module("nodes.model_cache").REGISTRY.clear()
    comfy_stub.deactivate()


def _with_loras(prompt: dict, strengths: list[float]) -> dict:
    """The workflow patched by the batch runner with a `lora` override (LoRA nodes in front of the sampler)."""
    from consisid_core.batch.workflow import apply_job

    (face,) = nodes_of(prompt, "LoadImage")
    (text,) = nodes_of(prompt, "ConsisIDTextEncode")
    return apply_job(prompt, prompt[face]["inputs"]["image"], prompt[text]["inputs"]["prompt"],
                     overrides={"lora": "+".join(f"{LORA_FILE}:{s}" for s in strengths)})


def test_trained_lora_in_the_canvas(canvas):
    base = tiny_prompt(seed=1234, steps=2, vae_tiling=False)
    (decode,) = nodes_of(base, "ConsisIDDecode")
    frames = lambda prompt: canvas(prompt).outputs[decode][0]  # noqa: E731
    plain = frames(base)
    with_lora = frames(_with_loras(base, [1.0]))
    assert with_lora.shape == plain.shape == (9, 32, 48, 3)
    assert (with_lora - plain).abs().max().item() > 1e-3  # the LoRA changes the video
    assert torch.equal(frames(base), plain)  # removing the node removes the LoRA, exactly
    assert torch.equal(frames(_with_loras(base, [0.0])), plain)  # and strength 0 is the model as loaded
    twice, double = frames(_with_loras(base, [1.0, 1.0])), frames(_with_loras(base, [2.0]))
    assert (twice - double).abs().max().item() < 1e-4 and (twice - with_lora).abs().max().item() > 1e-3


def test_cli_prepare_and_train(tmp_path, train_model, good_clip_dir, haar_face_models, monkeypatch, capsys):
    import consisid_core.face
    from consisid_core.cli import main

    monkeypatch.setattr(consisid_core.face, "load_face_models", lambda *a, **k: haar_face_models)
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["prepare-data", "--model", str(train_model), "--clips", str(good_clip_dir), "--out", str(data),
                 "--mask", "box"]) == 0
    assert "prepared 1 clip(s)" in capsys.readouterr().out
    from support.node_graph import DEFAULT_PHOTO

    assert main(["train", "--model", str(train_model), "--data", str(data), "--out", str(run), "--lora-rank", "4",
                 "--max-steps", "2", "--warmup-steps", "0", "--checkpoint-every", "1", "--validate", "1",
                 "--validate-face", str(DEFAULT_PHOTO), "--validate-steps", "2"]) == 0
    assert (run / "pytorch_lora_weights.safetensors").is_file() and (run / "checkpoints").is_dir()
    from consisid_core.video import count_frames

    videos = sorted((run / "validation").glob("*.mp4"))
    assert [v.name for v in videos] == ["step-0000001.mp4", "step-0000002.mp4"] and count_frames(videos[0]) == 9
    assert main(["train", "--model", str(train_model), "--data", str(tmp_path / "nothing"), "--out", str(run)]) == 2
    assert "not a prepared dataset" in capsys.readouterr().err


def test_generate_with_lora(tmp_path, train_model, lora_run, capsys):
    from consisid_core.cli import main
    from consisid_core.cli.lora_args import parse_lora

    assert parse_lora("a/b.safetensors") == (Path("a/b.safetensors"), 1.0)
    assert parse_lora("a/b.safetensors:0.5") == (Path("a/b.safetensors"), 0.5)
    assert parse_lora("C:\\loras\\b.safetensors") == (Path("C:\\loras\\b.safetensors"), 1.0)
    lora = lora_run[3].lora_path
    out = tmp_path / "with_lora.mp4"
    assert main(["generate", "--model", str(train_model), "--steps", "2", "--out", str(out), "--device", "cpu",
                 "--lora", f"{lora}:0.7"]) == 0
    printed = capsys.readouterr().out
    assert f"{lora} at strength 0.7" in printed and out.is_file()
    assert main(["generate", "--model", str(train_model), "--out", str(tmp_path / "x.mp4"),
                 "--lora", str(tmp_path / "missing.safetensors")]) == 2
    assert "missing.safetensors: no such file" in capsys.readouterr().err


def test_batch_lora_override_builds_the_chain():
    from consisid_core.batch.lora_override import add_lora_nodes, parse_lora_override
    from consisid_core.errors import ConsisIDError

    assert parse_lora_override("a.safetensors:0.8+ b.safetensors") == [("a.safetensors", 0.8), ("b.safetensors", 1.0)]
    assert parse_lora_override("") == []
    with pytest.raises(ConsisIDError, match="not a .safetensors"):
        parse_lora_override("a.ckpt")
    prompt = tiny_prompt()
    (loader,) = nodes_of(prompt, "ConsisIDModelLoader")
    (sampler,) = nodes_of(prompt, "ConsisIDSampler")
    added = add_lora_nodes(prompt, "a.safetensors:0.5+b.safetensors")
    first, second = (prompt[i] for i in added)
    assert first["inputs"] == {"model": [loader, 0], "lora_name": "a.safetensors", "strength": 0.5}
    assert second["inputs"]["model"] == [added[0], 0] and prompt[sampler]["inputs"]["model"] == [added[1], 0]
