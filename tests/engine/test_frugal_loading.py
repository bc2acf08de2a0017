"""Frugal loading: a skeleton without parameter memory, filled tensor by tensor (cast one at a time, never a
whole state dict next to the model), giving exactly what diffusers' from_pretrained gives."""

from __future__ import annotations

import weakref

import torch

from consisid_core.engine import weights
from consisid_core.engine.files import read_config
from consisid_core.engine.weights import _parameters_on_meta, build_model


def _transformer_files(tiny_model):
    folder = tiny_model / "transformer"
    return folder, sorted(folder.glob("*.safetensors"))


def test_skeleton_allocates_no_parameters_but_keeps_computed_buffers(tiny_model):
    from diffusers import ConsisIDTransformer3DModel

    folder, _ = _transformer_files(tiny_model)
    config = {k: v for k, v in read_config(folder / "config.json").items() if not k.startswith("_")}
    with _parameters_on_meta():
        model = ConsisIDTransformer3DModel.from_config(config)
    assert all(p.is_meta for p in model.parameters())
    assert not any(b.is_meta for b in model.buffers()), "position tables computed in __init__ stay real"
    assert not torch.nn.Linear(2, 2).weight.is_meta, "the patch is undone afterwards"


def test_cast_load_holds_one_source_tensor_at_a_time_and_matches_diffusers(tiny_model, monkeypatch):
    from diffusers import ConsisIDTransformer3DModel

    folder, files = _transformer_files(tiny_model)
    original = weights.iter_tensors
    alive_before_next: list[int] = []

    def watched(*args, **kwargs):
        refs: list = []
        for name, tensor in original(*args, **kwargs):
            alive_before_next.append(sum(r() is not None for r in refs))
            refs.append(weakref.ref(tensor))
            yield name, tensor
            del tensor

    monkeypatch.setattr(weights, "iter_tensors", watched)
    ours = build_model(ConsisIDTransformer3DModel, read_config(folder / "config.json"), files, torch.bfloat16,
                       "transformer", "test")
    assert len(alive_before_next) > 20
    assert max(alive_before_next) == 0, "each source tensor is freed once cast (no state dict materialised)"

    reference = ConsisIDTransformer3DModel.from_pretrained(str(folder), torch_dtype=torch.bfloat16)
    theirs = reference.state_dict()
    mine = ours.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(mine[k].dtype == theirs[k].dtype and torch.equal(mine[k], theirs[k]) for k in theirs)
    assert all(torch.equal(a, b) for a, b in zip(ours.buffers(), reference.buffers()))


def test_same_dtype_load_maps_the_file_without_copying(tiny_model):
    from diffusers import ConsisIDTransformer3DModel

    folder, files = _transformer_files(tiny_model)
    assert {t.dtype for _, t in weights.iter_tensors(files, "test") if t.ndim == 2} == {torch.float32}
    model = build_model(ConsisIDTransformer3DModel, read_config(folder / "config.json"), files, torch.float32,
                        "transformer", "test")
    sizes = {p.untyped_storage().nbytes() for p in model.parameters()}
    assert sizes == {files[0].stat().st_size}, "parameters are views of the one mapped file"
