"""The photo is read once: from photo to video the node graph and the CLI run each face network once per photo
(Face Crop&Align reads it; the Local Extractor takes its face output), and workflows saved with the photo wired
into the Local Extractor (the previous release's wiring) still run and give the same video."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from support.node_graph import DEFAULT_PHOTO, MODEL_NAME, TINY, nodes_of, tiny_prompt

PREVIOUS = Path(__file__).parent / "previous_release"  # the shipped workflows as of commit 801f71b

ONE_READ = {"antelopev2": 1, "retinaface": 1, "arcface": 1, "parser": 1, "eva": 1}


def _only(prompt: dict, class_type: str) -> str:
    (node,) = nodes_of(prompt, class_type)
    return node


@pytest.fixture
def face_calls(monkeypatch) -> dict:
    """Counts of every face-network call (detectors' `detect`, ArcFace, BiSeNet and EVA-CLIP forwards)."""
    from consisid_core.face.bisenet import BiSeNet
    from consisid_core.face.eva_clip import EVAVisionTower
    from consisid_core.face.insightface_models import AntelopeDetector, ArcFaceRecognizer
    from consisid_core.face.retinaface import RetinaFaceDetector

    calls = dict.fromkeys(ONE_READ, 0)

    def spy(cls, method: str, key: str) -> None:
        original = getattr(cls, method)

        def counted(self, *args, **kwargs):
            calls[key] += 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, counted)

    spy(AntelopeDetector, "detect", "antelopev2")
    spy(RetinaFaceDetector, "detect", "retinaface")
    spy(ArcFaceRecognizer, "embed", "arcface")
    spy(ArcFaceRecognizer, "embed_aligned", "arcface")
    spy(BiSeNet, "forward", "parser")
    spy(EVAVisionTower, "forward", "eva")
    return calls


def legacy_prompt(name: str = "consisid_core_video_api.json", **overrides) -> dict:
    """A copy of the previous release's API workflow (the photo wired into the Local Extractor too), set to the
    tiny model the way tiny_prompt sets the shipped one."""
    prompt = json.loads((PREVIOUS / name).read_text(encoding="utf-8"))
    settings = {"precision": "fp32", "memory_mode": "none", **TINY, "num_frames": 9, **overrides}
    for node in prompt.values():
        for key, value in settings.items():
            if key in node["inputs"] and not isinstance(node["inputs"][key], list):
                node["inputs"][key] = value
    local = prompt[_only(prompt, "ConsisIDLocalExtractor")]["inputs"]
    assert "face" not in local and local["image"] == [_only(prompt, "LoadImage"), 0], "the previous wiring"
    return prompt


def test_graph_from_photo_to_video_reads_the_photo_once(comfyui, face_calls):
    prompt = tiny_prompt(steps=1)
    frames = comfyui.run(prompt).outputs[_only(prompt, "ConsisIDDecode")][0]
    assert frames.shape[0] == 9
    assert face_calls == ONE_READ


def test_a_batch_of_photos_is_read_once_per_photo(comfyui, face_calls):
    import numpy as np
    from PIL import Image

    (models,) = comfyui.mappings["ConsisIDFaceModelsLoader"].execute(MODEL_NAME, "CPU", "default", "fp32")
    photo = torch.from_numpy(np.asarray(Image.open(DEFAULT_PHOTO).convert("RGB")).astype(np.float32) / 255.0)[None]
    batch = torch.cat([photo, photo.flip(2)])  # the same person twice (mirrored)
    _aligned, faces = comfyui.mappings["ConsisIDFaceCropAlign"].execute(models, batch, "largest", 0)
    (local,) = comfyui.mappings["ConsisIDLocalExtractor"].execute(models, face_scale=1.0, face=faces)
    assert local.photos == 2
    assert face_calls == {key: 2 for key in ONE_READ}


def test_cli_reads_the_photo_once(comfyui, face_calls, tmp_path):
    from consisid_core.cli import main

    assert main(["generate", "--model", str(comfyui.root / "models" / "consisid" / MODEL_NAME), "--face",
                 str(DEFAULT_PHOTO), "--steps", "1", "--width", "48", "--height", "32", "--frames", "9",
                 "--device", "cpu", "--dtype", "fp32", "--out", str(tmp_path / "once.mp4")]) == 0
    assert face_calls == ONE_READ


def test_previous_release_wiring_still_runs_and_gives_the_same_video(comfyui, face_calls, caplog):
    """The photo wired into the Local Extractor (optional legacy input): same features and frames, read twice, and
    the log says what to rewire."""
    new = tiny_prompt(steps=2, seed=7)
    new_result = comfyui.run(new)
    assert face_calls["antelopev2"] == 1
    old = legacy_prompt(steps=2, seed=7)
    with caplog.at_level("WARNING", logger="ConsisID"):
        old_result = comfyui.run(old)
    assert face_calls["antelopev2"] == 3, "the legacy wiring reads the photo in both face nodes"
    assert "connect Face Crop&Align's face output to the Local Extractor's face input" in caplog.text
    local_new = new_result.outputs[_only(new, "ConsisIDLocalExtractor")][0]
    local_old = old_result.outputs[_only(old, "ConsisIDLocalExtractor")][0]
    assert torch.equal(local_new.id_cond, local_old.id_cond)
    decode = _only(new, "ConsisIDDecode")
    assert torch.equal(new_result.outputs[decode][0], old_result.outputs[decode][0])


def test_face_and_photo_both_connected_reads_the_photo_once(comfyui, face_calls, caplog):
    """A workflow that adds the face link but keeps the old photo link: the face is used, the photo not read again."""
    prompt = tiny_prompt(steps=1)
    local = prompt[_only(prompt, "ConsisIDLocalExtractor")]["inputs"]
    local["image"] = prompt[_only(prompt, "ConsisIDFaceCropAlign")]["inputs"]["image"]
    with caplog.at_level("WARNING", logger="ConsisID"):
        comfyui.run(prompt)
    assert face_calls == ONE_READ
    assert "the face input is used and the image is ignored" in caplog.text
