"""Face models leave the accelerator without copying back (onnxruntime sessions released and rebuilt), and
face extraction stops at the next model call when cancelled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from consisid_core.cancel import Cancelled
from consisid_core.runtime import offload, offload_groups
from consisid_core.runtime.offload import Placement, host_tensors
from consisid_core.face import extract_identity, load_face_models
from engine.test_offload_fakes import pretend_cuda


@pytest.fixture()
def face_models(tiny_face_dir):
    return load_face_models(tiny_face_dir)


def test_offload_drops_device_copies_and_onnx_sessions_and_extraction_comes_back(face_models, photos, monkeypatch):
    before = extract_identity(face_models, photos["astronaut"])
    cuda = pretend_cuda(monkeypatch)  # device copies are clones; cudaHostRegister is a spy
    face_models.placement = Placement(torch.device("cpu"), "none", host_copies=True)
    nets = face_models.networks()
    assert len(nets) == 3, "RetinaFace, BiSeNet and EVA-CLIP"
    host = host_tensors(nets)
    for onnx in (face_models.detector, face_models.recognizer):
        monkeypatch.setattr(type(onnx), "on_accelerator", property(lambda self: True))  # as with CUDAExecutionProvider

    for _ in range(2):
        again = extract_identity(face_models, photos["astronaut"])  # brings the networks onto the device
        assert torch.equal(again.id_cond, before.id_cond) and np.array_equal(again.face_image, before.face_image)
        assert all(face_models.placement.device_bytes(n) == offload.module_bytes(n) for n in nets)
        copies = offload_groups.host_copies(nets)
        assert all(cuda.covers(copies[id(p)]) for n in nets for p in n.parameters()), "host copies are pinned"
        assert face_models.placement.pinned().pinned > 0
        face_models.offload()
        assert all(face_models.placement.device_bytes(n) == 0 for n in nets), "device copies dropped"
        assert host_tensors(nets) == host, "host copies keep their storage"
        assert cuda.registered == {}, "offloaded networks are unpinned"
        assert face_models.detector.model.session is None and face_models.recognizer.model.session is None


def test_cpu_sessions_are_kept(face_models, photos):
    extract_identity(face_models, photos["astronaut"])
    face_models.offload()
    assert face_models.detector.model.session is not None, "a CPU session holds no accelerator memory"


def test_cancel_stops_face_extraction_at_the_next_model_call(face_models, photos, monkeypatch):
    eva_calls = []
    handle = face_models.eva.register_forward_pre_hook(lambda m, a: eva_calls.append(1))
    asked = []
    try:
        landmarker_detect = face_models.landmarker.detect
        flag = {"stop": False}

        def detect_then_cancel(bgr):
            flag["stop"] = True  # the user presses Cancel while RetinaFace runs
            return landmarker_detect(bgr)

        arcface_calls = []
        for method in ("embed", "embed_aligned"):
            original = getattr(face_models.recognizer, method)
            monkeypatch.setattr(face_models.recognizer, method,
                                lambda *a, original=original: arcface_calls.append(1) or original(*a))
        monkeypatch.setattr(face_models.landmarker, "detect", detect_then_cancel)
        with pytest.raises(Cancelled):
            extract_identity(face_models, photos["astronaut"], should_cancel=lambda: asked.append(1) or flag["stop"])
        assert arcface_calls == [] and eva_calls == [], "stopped before the next model call (ArcFace never ran)"
        assert len(asked) == 3, "checked before the detector, after it, and after RetinaFace"
        monkeypatch.undo()
        ident = extract_identity(face_models, photos["astronaut"], should_cancel=lambda: False)
        assert ident.id_cond.shape[0] == 1 and eva_calls == [1], "the models work again after a cancel"
    finally:
        handle.remove()
