"""Face model files are found where users keep them, never downloaded, and missing ones are reported clearly."""

from __future__ import annotations

import ast
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

from consisid_core import catalog
from consisid_core.errors import ModelFilesError
from consisid_core.face import FaceWeightsError, load_face_models, locate_face_weights
from consisid_core.face.state_dict import load_torch_state_dict
from consisid_core.face.weights import ANTELOPEV2_REQUIRED, FACE_ENCODER_FILES

CORE = Path(__file__).resolve().parents[2] / "consisid_core"


def _touch_face_encoder(root: Path, torch_files=FACE_ENCODER_FILES, onnx_files=ANTELOPEV2_REQUIRED, ante=None) -> Path:
    face = root / "face_encoder"
    ante = ante or face / "models" / "antelopev2"
    ante.mkdir(parents=True, exist_ok=True)
    for name in torch_files:
        (face / name).write_bytes(b"x")
    for name in onnx_files:
        (ante / name).write_bytes(b"x")
    return face


def test_model_folder_or_face_encoder_folder(tmp_path):
    """Both the ConsisID model folder and its face_encoder/ subfolder are accepted."""
    face = _touch_face_encoder(tmp_path)
    for given in (tmp_path, face):
        files = locate_face_weights(given)
        assert files.face_encoder_dir == face
        assert files.eva_clip == face / catalog.EVA_CLIP_FILE and files.scrfd.is_file() and files.glintr100.is_file()


def test_one_error_lists_every_missing_file_the_folders_and_the_source(tmp_path):
    """Several missing files give ONE error naming each file, every folder searched and where to download."""
    face = _touch_face_encoder(tmp_path, torch_files=[catalog.BISENET_FILE], onnx_files=[])
    with pytest.raises(FaceWeightsError) as err:
        locate_face_weights(tmp_path)
    msg = str(err.value)
    missing = [face / catalog.RETINAFACE_FILE, face / catalog.EVA_CLIP_FILE] + [
        face / "models" / "antelopev2" / f for f in ANTELOPEV2_REQUIRED]
    for path in missing:
        assert str(path) in msg
    assert set(err.value.missing) == set(missing)
    assert catalog.BISENET_FILE not in re.findall(r"missing: .*", msg)[0]
    assert f"searched: {face}" in msg and str(face / "models" / "antelopev2") in msg
    assert catalog.HF_URL in msg and catalog.INSIGHTFACE_ANTELOPEV2_URL in msg
    assert "nothing is downloaded" in msg
    assert isinstance(err.value, ModelFilesError) and isinstance(err.value, FileNotFoundError)


def test_nested_antelopev2_folder_gets_a_precise_message(tmp_path):
    """The classic unzip mistake antelopev2/antelopev2/*.onnx is named as such, with the fix."""
    nested = tmp_path / "face_encoder" / "models" / "antelopev2" / "antelopev2"
    _touch_face_encoder(tmp_path, ante=nested)
    with pytest.raises(FaceWeightsError) as err:
        locate_face_weights(tmp_path)
    msg = str(err.value)
    assert "one folder too deep" in msg and str(nested) in msg and "antelopev2/antelopev2" in msg


def test_nested_folder_under_an_explicit_comfyui_path(tmp_path):
    """Same message when the user points at ComfyUI's models/insightface/models/antelopev2 that is nested."""
    _touch_face_encoder(tmp_path / "model", onnx_files=[])
    comfy = tmp_path / "ComfyUI" / "models" / "insightface" / "models" / "antelopev2"
    _touch_face_encoder(tmp_path / "unused", torch_files=[], ante=comfy / "antelopev2")
    with pytest.raises(FaceWeightsError) as err:
        locate_face_weights(tmp_path / "model", antelopev2_dir=comfy)
    assert "one folder too deep" in str(err.value) and str(comfy) in str(err.value)


@pytest.mark.parametrize("given", ["antelopev2", "models", "insightface"])
def test_shared_comfyui_antelopev2_folder(tmp_path, given):
    """antelopev2 may live in ComfyUI's models/insightface/models/antelopev2 (given as any of its three levels)."""
    _touch_face_encoder(tmp_path / "model", onnx_files=[])
    insightface = tmp_path / "ComfyUI" / "models" / "insightface"
    ante = insightface / "models" / "antelopev2"
    _touch_face_encoder(tmp_path / "unused", torch_files=[], ante=ante)
    explicit = {"antelopev2": ante, "models": insightface / "models", "insightface": insightface}[given]
    assert locate_face_weights(tmp_path / "model", antelopev2_dir=explicit).antelopev2_dir == ante


def test_loading_with_shared_antelopev2_runs(tiny_face_dir, tmp_path, photos):
    """A face_encoder/ without models/ plus a separate antelopev2 folder loads and extracts an identity."""
    face = tmp_path / "model" / "face_encoder"
    face.mkdir(parents=True)
    for name in FACE_ENCODER_FILES:
        (face / name).symlink_to(tiny_face_dir / "face_encoder" / name)
    shared = tmp_path / "insightface" / "models" / "antelopev2"
    shutil.copytree(tiny_face_dir / "face_encoder" / "models" / "antelopev2", shared)
    models = load_face_models(tmp_path / "model", antelopev2_dir=tmp_path / "insightface")
    assert models.files.antelopev2_dir == shared and models.onnx_providers == ["CPUExecutionProvider"]


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FaceWeightsError) as err:
        load_face_models(tmp_path / "does-not-exist")
    assert "does-not-exist" in str(err.value) and "missing:" in str(err.value)


def test_every_torch_load_uses_weights_only():
    """Every torch.load call in consisid_core passes weights_only=True (pickled code is never executed)."""
    calls = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                calls.append((f"{path.name}:{node.lineno}", safe))
    assert any(name.startswith("state_dict.py") for name, _ in calls)
    assert [name for name, safe in calls if not safe] == []


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_pickle_with_code_is_refused(tmp_path):
    """A weight file carrying a pickled callable is rejected with a clear ModelFilesError, not executed."""
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "payload": _Payload()}, path)
    with pytest.raises(ModelFilesError) as err:
        load_torch_state_dict(path)
    assert "weights_only" in str(err.value)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFilesError):
        load_torch_state_dict(path)


def test_no_forbidden_imports_in_the_face_package():
    """Runtime code never imports torchvision, facexlib, timm, consisid_eva_clip or scikit-image."""
    pattern = re.compile(r"^\s*(from|import)\s+(torchvision|facexlib|timm|consisid_eva_clip|skimage)\b", re.M)
    offenders = [p.name for p in CORE.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_module_is_not_used_to_load(tmp_path):
    """Sanity: our loader does not fall back to plain pickle for a non-zip file."""
    path = tmp_path / "plain.pkl"
    with open(path, "wb") as f:
        pickle.dump({"w": 1}, f)
    with pytest.raises(ModelFilesError):
        load_torch_state_dict(path)


def test_onnx_providers_default_cpu_and_unavailable_fall_back(caplog):
    """CPU by default; shorthand names are accepted; an unavailable provider (CUDA here) falls back to CPU with a warning."""
    import onnxruntime

    from consisid_core.face.insightface_models import resolve_providers

    assert resolve_providers(None) == ["CPUExecutionProvider"]
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the fallback case cannot be shown here")
    with caplog.at_level("WARNING", logger="ConsisID"):
        assert resolve_providers(["cuda"]) == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider" in caplog.text
