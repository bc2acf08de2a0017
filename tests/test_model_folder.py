"""The one model-folder resolver: the loader, the face loader, the model check (badge) and the node lists agree.

Folders are built with sparse files at catalog sizes (test_model_status.build_model), so nothing heavy is loaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import comfy_stub
from consisid_core import catalog, model_folder, model_status
from consisid_core.engine.files import resolve_model_folder
from consisid_core.errors import ModelFilesError
from consisid_core.face.weights import locate_face_weights
from support.pack import import_pack, pack_module
from test_model_status import build_model, write_safetensors

ANTE = catalog.ANTELOPEV2_SUBDIR


def _put_onnx(folder: Path, names=catalog.ANTELOPEV2_FILES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        with open(folder / name, "wb") as handle:
            handle.truncate(catalog.ANTELOPEV2_SIZES[name])


def _layouts(tmp: Path) -> dict[str, tuple[Path, list[Path]]]:
    """Model folders (without their own complete antelopev2) next to insightface folders, one case each."""
    cases = {}

    def case(name, own=None, insight=()):
        model = tmp / name / "consisid" / "ConsisID-preview"
        build_model(model)
        own_dir = model / "face_encoder" / Path(*ANTE)
        shutil.rmtree(own_dir)
        if own is not None:
            _put_onnx(own_dir, own)
        roots = []
        for i, (layout, names) in enumerate(insight):
            root = tmp / name / f"insightface{i}"
            target = root / Path(*ANTE) / ("antelopev2" if layout == "nested" else "")
            _put_onnx(target, names)
            roots.append(root)
        cases[name] = (model, roots)

    case("own_complete", own=catalog.ANTELOPEV2_FILES, insight=[("flat", catalog.ANTELOPEV2_FILES)])
    case("own_used_only", own=catalog.ANTELOPEV2_USED, insight=[("flat", catalog.ANTELOPEV2_FILES)])
    case("second_insightface", insight=[("flat", ("genderage.onnx",)), ("flat", catalog.ANTELOPEV2_FILES)])
    case("nested_then_flat", insight=[("nested", catalog.ANTELOPEV2_FILES), ("flat", catalog.ANTELOPEV2_FILES)])
    case("only_nested", insight=[("nested", catalog.ANTELOPEV2_FILES)])
    case("nowhere", insight=[("flat", ())])
    case("two_complete", insight=[("flat", catalog.ANTELOPEV2_USED), ("flat", catalog.ANTELOPEV2_FILES)])
    return cases


@pytest.mark.parametrize("name", ["own_complete", "own_used_only", "second_insightface", "nested_then_flat",
                                  "only_nested", "nowhere", "two_complete"])
def test_badge_and_face_loader_agree_on_the_antelopev2_folder(tmp_path, name):
    model, roots = _layouts(tmp_path)[name]
    (badge,) = model_status.scan_models([str(model.parent)], [str(r) for r in roots]).models
    try:
        loaded = str(locate_face_weights(model, insightface_dirs=roots).antelopev2_dir)
    except ModelFilesError as exc:
        loaded = None
        nested = [f for f in badge.files if f.status == model_status.NESTED]
        assert bool(nested) == ("one folder too deep" in str(exc)), "both name the nested-folder mistake, or neither"
    assert badge.antelopev2_dir == loaded
    assert (badge.problems == 0) == (loaded is not None)


def test_own_folder_with_the_used_files_wins_over_a_fuller_shared_copy(tmp_path):
    model, roots = _layouts(tmp_path)["own_used_only"]
    own = model / "face_encoder" / Path(*ANTE)
    assert locate_face_weights(model, insightface_dirs=roots).antelopev2_dir == own
    (badge,) = model_status.scan_models([str(model.parent)], [str(r) for r in roots]).models
    assert badge.antelopev2_dir == str(own) and badge.ok


def _comfy_with_models(tmp_path):
    """A ComfyUI stand-in with two consisid roots holding model folders and things that are not model folders."""
    folder_paths = comfy_stub.activate(tmp_path / "ComfyUI")
    import_pack()
    pack_module("nodes.comfy_bridge").register_model_folders()
    first = Path(folder_paths.models_dir) / "consisid"
    second = tmp_path / "disk2" / "consisid"
    folder_paths.add_model_folder_path("consisid", str(second))
    build_model(first / "Complete")
    build_model(second / "Complete")  # same name in a later root: the first root wins
    build_model(second / "OnlyInSecond")
    (first / "JustIndex").mkdir()
    (first / "JustIndex" / "model_index.json").write_text("{}", encoding="utf-8")
    (first / "OnlyTransformer" / "transformer").mkdir(parents=True)
    (first / "Empty").mkdir()
    (first / "Unrelated").mkdir()
    (first / "Unrelated" / "notes.txt").write_text("x", encoding="utf-8")
    (first / ".hidden" / "transformer").mkdir(parents=True)
    (first / "a_file.safetensors").write_bytes(b"x")
    candidates = ["Complete", "OnlyInSecond", "JustIndex", "OnlyTransformer", "Empty", "Unrelated", ".hidden",
                  "a_file.safetensors", "../disk2", "Missing"]
    return folder_paths, candidates


def test_a_folder_is_listed_iff_the_loader_and_the_badge_find_it(tmp_path):
    folder_paths, candidates = _comfy_with_models(tmp_path)
    try:
        folders = pack_module("nodes.model_folders")
        loader = pack_module("nodes.loaders").ConsisIDModelLoader
        routes = pack_module("nodes.server_routes")
        listed = folders.model_names()
        assert listed == ["Complete", "JustIndex", "OnlyTransformer", "OnlyInSecond"]  # root by root
        badge = {m["name"]: m["path"] for m in routes.models_payload(folder_paths)["models"]}
        for name in candidates:
            found = folders.find_model(name)
            verdict = loader.validate_inputs(name)
            not_found = isinstance(verdict, str) and "was not found" in verdict
            assert (name in listed) == (found is not None) == (not not_found) == (name in badge), name
            if found is not None:
                assert badge[name] == str(found), "the badge checks the folder the loader loads"
        assert str(folders.find_model("Complete")).startswith(str(Path(folder_paths.models_dir))), "first root wins"
        assert loader.validate_inputs("Complete") is True
        assert "model_index.json is missing" in loader.validate_inputs("OnlyTransformer")
    finally:
        comfy_stub.deactivate()


def test_bin_weights_are_accepted_by_loader_and_check_alike(tmp_path):
    folder = tmp_path / "BinVae"
    build_model(folder)
    vae = folder / "vae" / "diffusion_pytorch_model.safetensors"
    vae.rename(vae.with_suffix(".bin"))
    assert resolve_model_folder(folder).vae.weights == (vae.with_suffix(".bin"),)
    files = {f.path: f for f in model_status.check_model_folder(str(folder)).files}
    assert files["vae/diffusion_pytorch_model.bin"].status == model_status.FOUND
    assert "vae/diffusion_pytorch_model.safetensors" not in files


def test_index_shards_are_what_both_require(tmp_path):
    folder = tmp_path / "Sharded"
    build_model(folder)
    index = folder / "text_encoder" / "model.safetensors.index.json"
    index.write_text('{"weight_map": {"a": "x-1.safetensors", "b": "x-2.safetensors"}}', encoding="utf-8")
    write_safetensors(str(folder / "text_encoder" / "x-1.safetensors"), 4096)
    with pytest.raises(ModelFilesError, match="1 of 2 weight shards"):
        resolve_model_folder(folder)
    files = {f.path: f.status for f in model_status.check_model_folder(str(folder)).files}
    assert files["text_encoder/x-1.safetensors"] == model_status.FOUND
    assert files["text_encoder/x-2.safetensors"] == model_status.MISSING


def test_native_size_comes_from_model_info(tmp_path):
    folder = tmp_path / "Native"
    build_model(folder)
    info = model_folder.read_model_info(folder)
    assert model_status.native_settings(str(folder)) == {
        "width": info.native_width, "height": info.native_height, "num_frames": info.native_frames}
    os.remove(folder / "transformer" / "config.json")
    assert model_folder.read_model_info(folder) is None and model_status.native_settings(str(folder)) is None


def test_explicit_antelopev2_folder_comes_first_and_accepts_three_levels(tmp_path):
    face = tmp_path / "model" / "face_encoder"
    _put_onnx(face / Path(*ANTE))
    shared = tmp_path / "insightface"
    _put_onnx(shared / Path(*ANTE))
    for given in (shared, shared / "models", shared / Path(*ANTE)):
        found = model_folder.locate_antelopev2(face, explicit=given)
        assert found.directory == shared / Path(*ANTE)
    assert model_folder.locate_antelopev2(face, insightface_dirs=[shared]).directory == face / Path(*ANTE)
