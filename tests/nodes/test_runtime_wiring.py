"""CLI and node graph take their runtime from the same resolver: identical identity features and frames for the
same settings, the noise device reaches the generator from both, and bad combinations stop the loader nodes."""

from __future__ import annotations

import pytest
import torch

from comfy_stub import harness
from consisid_core.engine import engine as engine_module
from support.node_graph import DEFAULT_PHOTO, MODEL_NAME, nodes_of, tiny_prompt


def _only(prompt: dict, class_type: str) -> str:
    (node,) = nodes_of(prompt, class_type)
    return node


@pytest.fixture
def cli_capture(monkeypatch):
    """Run `generate` in-process and keep the identity it extracted and the frames it would write."""
    import consisid_core.face
    import consisid_core.video
    from consisid_core.cli import main

    kept: dict = {}
    extract = consisid_core.face.extract_identity

    def keep_identity(*args, **kwargs):
        kept["identity"] = extract(*args, **kwargs)
        return kept["identity"]

    write = consisid_core.video.write_mp4

    def keep_frames(video, *args, **kwargs):
        kept["frames"] = video
        return write(video, *args, **kwargs)

    def run(*argv: str) -> dict:
        kept.clear()
        with monkeypatch.context() as patch:  # only while the CLI runs (the graph's video nodes write for real)
            patch.setattr(consisid_core.face, "extract_identity", keep_identity)
            patch.setattr(consisid_core.video, "write_mp4", keep_frames)
            assert main(["generate", *argv]) == 0
        return dict(kept)

    return run


@pytest.fixture
def noise_devices(monkeypatch) -> list:
    seen: list = []
    original = engine_module.generator_device
    monkeypatch.setattr(engine_module, "generator_device", lambda nd, dev: seen.append(nd) or original(nd, dev))
    return seen


def test_cli_and_node_graph_give_identical_identity_and_frames(comfyui, cli_capture, tmp_path):
    """bf16 everywhere (the GPU default): the CLI's EVA-CLIP runs in the same dtype as the Face Models Loader's."""
    prompt = tiny_prompt(precision="bf16", memory_mode="none", vae_tiling=False, steps=2, seed=42)
    result = comfyui.run(prompt)
    local = result.outputs[_only(prompt, "ConsisIDLocalExtractor")][0]
    frames = result.outputs[_only(prompt, "ConsisIDDecode")][0]
    text = prompt[_only(prompt, "ConsisIDTextEncode")]["inputs"]

    cli = cli_capture(
        "--model", str(comfyui.root / "models" / "consisid" / MODEL_NAME), "--face", str(DEFAULT_PHOTO),
        "--prompt", text["prompt"], "--negative-prompt", text["negative_prompt"], "--seed", "42", "--steps", "2",
        "--width", "48", "--height", "32", "--frames", "9", "--device", "cpu", "--dtype", "bf16",
        "--offload", "none", "--vae-tiling", "off", "--out", str(tmp_path / "x.mp4"),
    )
    identity = cli["identity"]  # EVA-CLIP ran in bf16 in both (an fp32 EVA gives other values)
    assert torch.equal(identity.id_cond.float(), local.id_cond.float())
    assert all(torch.equal(a.float(), b.float()) for a, b in zip(identity.id_vit_hidden, local.id_vit_hidden, strict=True))
    assert torch.equal(cli["frames"], frames)


def test_sampler_noise_device_reaches_the_generator(comfyui, noise_devices):
    comfyui.run(tiny_prompt(steps=1, noise_device="gpu"))
    comfyui.run(tiny_prompt(steps=1, noise_device="cpu"))
    assert noise_devices == ["gpu", "cpu"]


def test_cli_noise_device_reaches_the_generator(comfyui, cli_capture, noise_devices, tmp_path):
    common = ["--model", str(comfyui.root / "models" / "consisid" / MODEL_NAME), "--steps", "1", "--width", "48",
              "--height", "32", "--frames", "9", "--device", "cpu", "--dtype", "fp32"]
    cli_capture(*common, "--noise-device", "gpu", "--out", str(tmp_path / "gpu.mp4"))
    cli_capture(*common, "--out", str(tmp_path / "cpu.mp4"))
    assert noise_devices == ["gpu", "cpu"]


def test_sampler_tooltips_say_what_the_noise_device_does(comfyui):
    sampler = comfyui.mappings["ConsisIDSampler"]
    kind, options = sampler.INPUT_TYPES()["optional"]["noise_device"]
    assert (kind, options["options"], options["default"]) == ("COMBO", ["cpu", "gpu"], "cpu")
    assert 'torch.Generator("cuda")' in options["tooltip"] and "every machine" in options["tooltip"]
    assert "exactly" not in sampler.DESCRIPTION


@pytest.mark.parametrize("overrides, node, message", [
    (dict(attention="sdpa_efficient"), "ConsisIDModelLoader", "attention 'sdpa_efficient' needs a CUDA GPU"),
])
def test_loader_nodes_refuse_bad_combinations_before_loading(comfyui, overrides, node, message):
    with pytest.raises(harness.NodeFailure) as failure:
        comfyui.run(tiny_prompt(**overrides))
    assert failure.value.class_type == node
    assert message in str(failure.value.exception)


def test_attention_combo_lists_only_backends_that_import(comfyui, monkeypatch, tmp_path):
    from consisid_core.runtime import attention

    (tmp_path / "broken_flash_wheel.py").write_text('raise ImportError("flash_attn_2_cuda: undefined symbol")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(attention.OPTIONAL_BACKENDS, "flash_attn", "broken_flash_wheel")
    monkeypatch.setattr(attention, "_IMPORT_ERRORS", {})
    choices = comfyui.mappings["ConsisIDModelLoader"].INPUT_TYPES()["required"]["attention"][1]["options"]
    assert choices[0] == "sdpa" and "flash_attn" not in choices


def test_loaders_key_their_models_on_the_one_runtime_setting(comfyui):
    """A loader resolves its choices once (consisid_core.runtime.resolve_runtime, as the CLI) and that setting is
    what its cache is keyed on and what the engine runs with: another precision alone is another model, the same
    choices give the same loaded model back."""
    from consisid_core.runtime import resolve_runtime

    loader, face_loader = comfyui.nodes["ConsisIDModelLoader"], comfyui.nodes["ConsisIDFaceModelsLoader"]
    (fp32,) = loader.execute(MODEL_NAME, "fp32", "auto", "sdpa")
    assert fp32.settings.runtime == resolve_runtime(device="cpu", dtype="fp32", attention="sdpa", memory_mode="none")
    assert fp32.settings.memory_mode == "auto" and fp32.get().runtime == fp32.settings.runtime
    (bf16,) = loader.execute(MODEL_NAME, "bf16", "auto", "sdpa")
    assert bf16 is not fp32 and bf16.settings.runtime.dtype == torch.bfloat16
    assert bf16.settings.path == fp32.settings.path and bf16.settings.memory_mode == "auto"
    assert loader.execute(MODEL_NAME, "bf16", "auto", "sdpa")[0] is bf16
    (faces,) = face_loader.execute(MODEL_NAME, "CPU", "cpu", "fp32")
    assert faces.settings.runtime == resolve_runtime(device="cpu", dtype="fp32")
    assert face_loader.execute(MODEL_NAME, "CPU", "cpu", "bf16")[0] is not faces
    assert face_loader.execute(MODEL_NAME, "CPU", "cpu", "fp32")[0] is faces
