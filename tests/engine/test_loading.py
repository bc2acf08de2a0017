"""Model loading: the folder layout, a single transformer file, and one-line errors for every broken piece."""

from __future__ import annotations

import json
import shutil
import socket

import pytest
import torch
from safetensors.torch import load_file, save_file

import consisid_core
from consisid_core.errors import ModelFilesError, UnsupportedInputError
from support.engine_inputs import PROMPT, face_image, identity

SETTINGS = dict(height=32, width=48, num_frames=9, num_inference_steps=2, guidance_scale=6.0, seed=3)


@pytest.fixture()
def model_copy(tiny_model, tmp_path):
    return shutil.copytree(tiny_model, tmp_path / "ConsisID-preview")


def _frames(engine):
    id_cond, hidden = identity()
    return engine.generate(PROMPT, image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, **SETTINGS)


def test_loading_never_opens_a_socket(tiny_model, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load_engine tried to open a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    engine = consisid_core.load_engine(tiny_model, device="cpu", dtype="fp32")
    assert engine.dtype == torch.float32 and engine.info.native_frames == 9


def test_single_safetensors_transformer_inside_the_model_folder(tiny_model):
    folder_engine = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)
    file = tiny_model / "transformer" / "diffusion_pytorch_model.safetensors"
    file_engine = consisid_core.load_engine(file, device="cpu", dtype=torch.float32)
    assert torch.equal(_frames(file_engine), _frames(folder_engine))


def test_single_file_elsewhere_with_components_dir(tiny_model, tmp_path):
    file = tmp_path / "diffusion_models" / "consisid_tiny.safetensors"
    file.parent.mkdir()
    shutil.copy(tiny_model / "transformer" / "diffusion_pytorch_model.safetensors", file)
    engine = consisid_core.load_engine(file, device="cpu", dtype=torch.float32, components_dir=tiny_model)
    assert engine.info.native_width == 48
    with pytest.raises(ModelFilesError, match="cannot find the VAE, T5 and scheduler"):
        consisid_core.load_engine(file, device="cpu")


def test_single_file_must_be_safetensors(tmp_path):
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(b"x")
    with pytest.raises(ModelFilesError, match="not a .safetensors file"):
        consisid_core.load_engine(bad, device="cpu")


def test_missing_folder(tmp_path):
    with pytest.raises(ModelFilesError, match="does not exist.*BestWishYsh/ConsisID-preview"):
        consisid_core.load_engine(tmp_path / "nope", device="cpu")


def test_folder_without_model_index(model_copy):
    (model_copy / "model_index.json").unlink()
    with pytest.raises(ModelFilesError, match="model_index.json is missing"):
        consisid_core.load_engine(model_copy, device="cpu")


@pytest.mark.parametrize(
    "remove, message",
    [
        ("vae", r"missing vae folder: .*vae"),
        ("vae/config.json", r"missing vae config: .*config.json"),
        ("text_encoder/model.safetensors", r"no weights in .*text_encoder"),
        ("scheduler/scheduler_config.json", r"missing scheduler config"),
        ("transformer/diffusion_pytorch_model.safetensors", r"no weights in .*transformer.*huggingface.co"),
    ],
)
def test_missing_components_are_named(model_copy, remove, message):
    target = model_copy / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(ModelFilesError, match=message):
        consisid_core.load_engine(model_copy, device="cpu")


def test_missing_tokenizer_files(model_copy):
    for f in (model_copy / "tokenizer").iterdir():
        f.unlink()
    with pytest.raises(ModelFilesError, match="neither spiece.model nor tokenizer.json"):
        consisid_core.load_engine(model_copy, device="cpu")


def test_truncated_weight_file(model_copy):
    file = model_copy / "transformer" / "diffusion_pytorch_model.safetensors"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFilesError, match=r"diffusion_pytorch_model.safetensors could not be read.*truncated"):
        consisid_core.load_engine(model_copy, device="cpu")


def test_sharded_weights_and_missing_shard(model_copy):
    folder = model_copy / "transformer"
    state = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    keys = sorted(state)
    half = len(keys) // 2
    shards = {"diffusion_pytorch_model-00001-of-00002.safetensors": keys[:half],
              "diffusion_pytorch_model-00002-of-00002.safetensors": keys[half:]}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, str(folder / name))
    index = {"metadata": {}, "weight_map": {k: name for name, names in shards.items() for k in names}}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    engine = consisid_core.load_engine(model_copy, device="cpu", dtype=torch.float32)
    assert engine.transformer.local_facial_extractor is not None
    (folder / "diffusion_pytorch_model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelFilesError, match="1 of 2 weight shards .* missing"):
        consisid_core.load_engine(model_copy, device="cpu")


def test_checkpoint_without_face_modules_is_not_consisid(model_copy):
    file = model_copy / "transformer" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(file))
    save_file({k: v for k, v in state.items() if not k.startswith("local_facial_extractor")}, str(file))
    with pytest.raises(ModelFilesError, match="face modules are absent"):
        consisid_core.load_engine(model_copy, device="cpu")


def test_config_and_weights_of_different_models(model_copy):
    config_path = model_copy / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["text_embed_dim"] = 64
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelFilesError, match="do not fit its config"):
        consisid_core.load_engine(model_copy, device="cpu")


def test_broken_json_config(model_copy):
    (model_copy / "vae" / "config.json").write_text("{not json")
    with pytest.raises(ModelFilesError, match="not JSON"):
        consisid_core.load_engine(model_copy, device="cpu")


@pytest.mark.parametrize("kwargs, message", [
    (dict(memory_mode="turbo"), "memory_mode must be one of"),
    (dict(dtype="int8"), "dtype must be one of"),
    (dict(attention="flash3"), "attention must be one of"),
])
def test_bad_options(tiny_model, kwargs, message):
    with pytest.raises(UnsupportedInputError, match=message):
        consisid_core.load_engine(tiny_model, device="cpu", **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_requested_without_gpu(tiny_model):
    with pytest.raises(UnsupportedInputError, match="no CUDA GPU"):
        consisid_core.load_engine(tiny_model, device="cuda")
