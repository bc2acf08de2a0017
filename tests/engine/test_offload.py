"""Where each memory mode puts the models, checked by recording the moves it asks for.

This machine has no GPU, so `Module.to` is recorded instead of executed for a pretend CUDA device; the
numerical side of every mode is covered by test_stages (identical frames on the CPU).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from consisid_core.engine.offload import Placement, _LayerStreamer

CUDA = torch.device("cuda")


@pytest.fixture()
def moves(monkeypatch):
    log: list[tuple[str, str]] = []

    def fake_to(self, *args, **kwargs):
        target = args[0] if args else kwargs.get("device")
        log.append((getattr(self, "tag", type(self).__name__), str(torch.device(target)) if target is not None else "dtype"))
        return self

    monkeypatch.setattr(nn.Module, "to", fake_to)
    monkeypatch.setattr("consisid_core.engine.offload._empty_cache", lambda device: None)
    return log


def _model(tag: str) -> nn.Module:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model.tag = tag
    return model


def test_none_keeps_models_on_the_device(moves):
    placement, a = Placement(CUDA, "none"), _model("a")
    placement.install(a)  # its parameters are on the CPU: one move to the device
    with placement.use(a):
        pass
    assert moves == [("a", "cuda"), ("a", "cuda")]  # (the fake move leaves them on the CPU, so use() re-checks)


def test_model_offload_moves_in_for_the_stage_and_out_after(moves):
    placement, t5, dit = Placement(CUDA, "model_offload"), _model("t5"), _model("dit")
    placement.install(t5, dit)
    moves.clear()
    with placement.use(t5):
        assert moves[-1] == ("t5", "cuda")
    assert moves[-1] == ("t5", "cpu")
    assert not any(tag == "dit" and where == "cuda" for tag, where in moves)


def test_model_offload_moves_back_even_when_the_stage_fails(moves):
    placement, vae = Placement(CUDA, "model_offload"), _model("vae")
    with pytest.raises(RuntimeError):
        with placement.use(vae):
            raise RuntimeError("out of memory")
    assert moves[-1] == ("vae", "cpu")


def test_use_part_moves_only_the_face_extractor(moves):
    placement, dit, lfe = Placement(CUDA, "model_offload"), _model("dit"), _model("lfe")
    with placement.use_part(dit, lfe):
        pass
    assert moves == [("lfe", "cuda"), ("lfe", "cpu")]


def test_sequential_offload_streams_each_layer(monkeypatch):
    placement, model = Placement(CUDA, "sequential_offload"), _model("dit")
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(_LayerStreamer, "_move", lambda self, m, device: calls.append((type(m).__name__, str(device))))
    monkeypatch.setattr(nn.Module, "to", lambda self, *a, **k: self)
    placement.install(model)
    with torch.no_grad():
        model(torch.zeros(1, 2))
    assert calls == [("Linear", "cuda"), ("Linear", "cpu"), ("Linear", "cuda"), ("Linear", "cpu")]
    placement.release(model)
    calls.clear()
    model(torch.zeros(1, 2))
    assert calls == [], "released models carry no hooks"


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="memory mode must be one of"):
        Placement(CUDA, "turbo")
