"""Model status: complete folder, one file missing, nested antelopev2, truncated files, sharded weights, CLI.

Folders are built with sparse files of the catalog's real sizes (no disk space used), safetensors files
carry a real header so the truncation check reads them like downloaded weights.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import zipfile
from contextlib import redirect_stdout

import pytest

from consisid_core import catalog, model_status
from consisid_core.cli import check_models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = 256


def write_safetensors(path, total_size: int, cut: int = 0) -> None:
    """A safetensors file of `total_size` bytes per its header (sparse data), optionally `cut` bytes short."""
    data = total_size - 8 - HEADER
    header = json.dumps({"weight": {"dtype": "U8", "shape": [data], "data_offsets": [0, data]}}).encode()
    header = header.ljust(HEADER, b" ")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(len(header).to_bytes(8, "little") + header)
        handle.truncate(total_size - cut)


def write_sized(path, size: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"\x80\x02")  # not zip: only the size can tell
        handle.truncate(size)


def write_json(path, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def build_model(folder, antelope_dir=None) -> str:
    """Every file of the published ConsisID-preview layout, at catalog sizes."""
    folder = str(folder)
    for entry in catalog.MODEL_FILES:
        path = os.path.join(folder, *entry.path.split("/"))
        if entry.any_of and not entry.path.endswith("spiece.model"):
            continue  # tokenizer.json is only the alternative to spiece.model
        if entry.path.endswith(".index.json"):
            shards = [e.name for e in catalog.MODEL_FILES if e.weight_set == entry.weight_set and e.path.endswith(".safetensors")]
            write_json(path, {"metadata": {"total_size": 1}, "weight_map": {f"w{i}": s for i, s in enumerate(shards)}})
        elif entry.path == "transformer/config.json":
            write_json(path, {"_class_name": "ConsisIDTransformer3DModel", "sample_width": 90, "sample_height": 60, "sample_frames": 49})
        elif entry.path.endswith(".json"):
            write_json(path, {"_class_name": "x"})
        elif entry.path.endswith(".safetensors"):
            write_safetensors(path, entry.size)
        else:
            write_sized(path, entry.size)
    antelope_dir = antelope_dir or os.path.join(folder, *catalog.ANTELOPEV2_DIR.split("/"))
    for name in catalog.ANTELOPEV2_FILES:
        write_sized(os.path.join(antelope_dir, name), catalog.ANTELOPEV2_SIZES[name])
    return folder


def by_path(status: model_status.FolderStatus) -> dict[str, model_status.FileStatus]:
    return {f.path: f for f in status.files}


@pytest.fixture
def models(tmp_path):
    root = tmp_path / "models"
    build_model(root / "consisid" / "ConsisID-preview")
    return root


def test_complete_folder_is_ok_with_native_size(models):
    report = model_status.scan_models_root(str(models))
    (model,) = report.models
    assert model.ok and model.problems == 0, [(f.path, f.status, f.message) for f in model.files if f.problem]
    assert model.native == {"width": 720, "height": 480, "num_frames": 49}
    paths = {f.path for f in model.files}
    assert "transformer/diffusion_pytorch_model-00001-of-00002.safetensors" in paths
    assert "text_encoder/model-00002-of-00002.safetensors" in paths
    assert {f"face_encoder/models/antelopev2/{n}" for n in catalog.ANTELOPEV2_FILES} <= paths
    assert "parsing_parsenet.pth" not in " ".join(paths), "our pipeline does not need ParseNet"
    assert report.ok and "all files found" in model_status.format_report(report)


def test_one_missing_file_names_target_and_source(models):
    folder = models / "consisid" / "ConsisID-preview"
    os.remove(folder / "vae" / "diffusion_pytorch_model.safetensors")
    (model,) = model_status.scan_models_root(str(models)).models
    problems = [f for f in model.files if f.problem]
    assert len(problems) == 1 and not model.ok
    missing = problems[0]
    assert missing.status == model_status.MISSING
    assert missing.target == str(folder / "vae" / "diffusion_pytorch_model.safetensors")
    assert missing.source["download_url"] == f"{catalog.HF_URL}/resolve/main/vae/diffusion_pytorch_model.safetensors"
    text = model_status.format_folder(model)
    assert "MISSING" in text and missing.target in text and missing.source["download_url"] in text


def test_truncated_shard_json_and_pickle_are_caught(models):
    folder = models / "consisid" / "ConsisID-preview"
    shard = folder / "text_encoder" / "model-00001-of-00002.safetensors"
    write_safetensors(str(shard), 4_990_000_000, cut=1000)
    with open(folder / "scheduler" / "scheduler_config.json", "w") as handle:
        handle.write('{"beta_start": 0.00085, "bet')
    write_sized(str(folder / "face_encoder" / catalog.EVA_CLIP_FILE), 400_000_000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # torch's zip checkpoint format, then cut short
        archive.writestr("archive/data.pkl", b"x" * 5000)
    (folder / "face_encoder" / catalog.BISENET_FILE).write_bytes(buffer.getvalue()[:-30])
    files = by_path(model_status.check_model_folder(str(folder)))
    assert files[shard.relative_to(folder).as_posix()].status == model_status.TRUNCATED
    assert "4989999000 of 4990000000 bytes" in files["text_encoder/model-00001-of-00002.safetensors"].message
    assert files["scheduler/scheduler_config.json"].status == model_status.TRUNCATED
    assert files[f"face_encoder/{catalog.EVA_CLIP_FILE}"].status == model_status.TRUNCATED
    assert "zip container is cut short" in files[f"face_encoder/{catalog.BISENET_FILE}"].message
    assert sum(f.problem for f in files.values()) == 4


def test_wrong_exact_size_is_a_size_mismatch(models):
    folder = models / "consisid" / "ConsisID-preview"
    write_sized(str(folder / "face_encoder" / catalog.RETINAFACE_FILE), 120_000_000)
    status = by_path(model_status.check_model_folder(str(folder)))[f"face_encoder/{catalog.RETINAFACE_FILE}"]
    assert status.status == model_status.SIZE_MISMATCH and "not the published file" in status.message


def test_a_complete_but_smaller_checkpoint_is_a_mismatch_not_a_truncation(models):
    folder = models / "consisid" / "ConsisID-preview"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # a whole torch zip checkpoint, just not the published one
        archive.writestr("archive/data.pkl", b"x" * 5000)
    (folder / "face_encoder" / catalog.EVA_CLIP_FILE).write_bytes(buffer.getvalue())
    status = by_path(model_status.check_model_folder(str(folder)))[f"face_encoder/{catalog.EVA_CLIP_FILE}"]
    assert status.status == model_status.SIZE_MISMATCH


def test_both_vae_precisions_are_accepted(models):
    folder = models / "consisid" / "ConsisID-preview"
    write_safetensors(str(folder / "vae" / "diffusion_pytorch_model.safetensors"), 431_220_702)
    assert model_status.check_model_folder(str(folder)).ok


def test_nested_antelopev2_is_detected_with_a_fix(tmp_path):
    root = tmp_path / "models"
    folder = root / "consisid" / "ConsisID-preview"
    insight = root / "insightface" / "models" / "antelopev2"
    build_model(folder, antelope_dir=str(insight / "antelopev2"))
    (model,) = model_status.scan_models_root(str(root)).models
    antelope = [f for f in model.files if f.component == "antelopev2"]
    assert [f.status for f in antelope] == [model_status.NESTED] * 5
    assert all(f.target == str(insight / f.path.rsplit("/", 1)[1]) for f in antelope)
    assert "move the .onnx files up one level" in antelope[0].message
    assert model.problems == 5


def test_antelopev2_in_comfyui_insightface_folder_counts(tmp_path):
    root = tmp_path / "models"
    insight = root / "insightface" / "models" / "antelopev2"
    build_model(root / "consisid" / "ConsisID-preview", antelope_dir=str(insight))
    (model,) = model_status.scan_models_root(str(root)).models
    assert model.ok and model.antelopev2_dir == str(insight)
    # without the insightface folder in the search, the same files are missing and the message says where else to look
    alone = model_status.check_model_folder(str(root / "consisid" / "ConsisID-preview"))
    assert sum(f.status == model_status.MISSING for f in alone.files) == 2  # scrfd + glintr100: what ConsisID runs
    assert sum(f.status == model_status.OPTIONAL_MISSING for f in alone.files) == 3  # the rest of the pack


def test_index_names_the_shards_and_single_file_also_works(tmp_path):
    folder = tmp_path / "tiny"
    build_model(folder)
    transformer = folder / "transformer"
    for name in os.listdir(transformer):
        if name.endswith(".safetensors") or name.endswith(".index.json"):
            os.remove(transformer / name)
    write_safetensors(str(transformer / "diffusion_pytorch_model.safetensors"), 4096)
    status = model_status.check_model_folder(str(folder))
    files = by_path(status)
    assert files["transformer/diffusion_pytorch_model.safetensors"].status == model_status.FOUND
    assert not any("00001-of-00002" in p and p.startswith("transformer") for p in files)
    assert status.ok
    # an index with other shard names: those are the files required
    os.remove(transformer / "diffusion_pytorch_model.safetensors")
    write_json(str(transformer / "diffusion_pytorch_model.safetensors.index.json"),
               {"weight_map": {"a": "part-1.safetensors", "b": "part-2.safetensors", "c": "part-1.safetensors"}})
    write_safetensors(str(transformer / "part-1.safetensors"), 2048)
    files = by_path(model_status.check_model_folder(str(folder)))
    assert files["transformer/part-1.safetensors"].status == model_status.FOUND
    assert files["transformer/part-2.safetensors"].status == model_status.MISSING


def test_tokenizer_json_replaces_spiece_model(models):
    folder = models / "consisid" / "ConsisID-preview"
    os.remove(folder / "tokenizer" / "spiece.model")
    assert by_path(model_status.check_model_folder(str(folder)))["tokenizer/spiece.model"].status == model_status.MISSING
    write_json(str(folder / "tokenizer" / "tokenizer.json"), {"model": {"type": "Unigram"}})
    files = by_path(model_status.check_model_folder(str(folder)))
    assert "tokenizer/spiece.model" not in files and files["tokenizer/tokenizer.json"].status == model_status.FOUND


def test_empty_models_tree_reports_the_default_folder(tmp_path):
    report = model_status.scan_models_root(str(tmp_path / "models"))
    (model,) = report.models
    assert model.name == "ConsisID-preview" and not model.exists and not report.ok
    assert model.path == str(tmp_path / "models" / "consisid" / "ConsisID-preview")
    assert all(f.status in (model_status.MISSING, model_status.OPTIONAL_MISSING) for f in model.files)


def test_files_put_directly_in_models_consisid_get_a_hint(tmp_path):
    root = tmp_path / "models"
    build_model(root / "consisid")
    (root / "consisid" / "unrelated").mkdir()
    report = model_status.scan_models_root(str(root))
    assert [m.name for m in report.models] == ["ConsisID-preview"] and not report.models[0].exists
    assert report.hints and "move them into a sub-folder" in model_status.format_report(report)


def test_extra_model_paths_yaml_is_searched(tmp_path):
    elsewhere = tmp_path / "disk2"
    build_model(elsewhere / "cid" / "MyConsisID")
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    (comfy / "extra_model_paths.yaml").write_text(
        f"mine:\n  base_path: {elsewhere}\n  consisid: |\n    cid\n  insightface: faces\n", encoding="utf-8")
    report = model_status.report_for_path(str(comfy / "models"))
    assert str(elsewhere / "cid") in report.consisid_dirs and str(elsewhere / "faces") in report.insightface_dirs
    assert [m.name for m in report.models] == ["MyConsisID"] and report.ok


def test_report_for_path_accepts_one_model_folder(models):
    folder = models / "consisid" / "ConsisID-preview"
    report = model_status.report_for_path(str(folder))
    assert [m.path for m in report.models] == [str(folder)] and report.ok


def _cli(argv) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    check_models.add_arguments(parser)
    out = io.StringIO()
    with redirect_stdout(out):
        code = check_models.run(parser.parse_args(argv))
    return code, out.getvalue()


def test_cli_table_and_json(models):
    code, text = _cli(["--models-dir", str(models)])
    assert code == 0 and "ConsisID-preview: all files found" in text and "native size: 720x480, 49 frames" in text
    os.remove(models / "consisid" / "ConsisID-preview" / "model_index.json")
    code, text = _cli(["--models-dir", str(models), "--json"])
    data = json.loads(text)
    assert code == 1 and data["problems"] == 1
    (missing,) = [f for f in data["models"][0]["files"] if f["problem"]]
    assert missing["path"] == "model_index.json" and missing["status"] == "missing"
    assert missing["target"].endswith(os.path.join("ConsisID-preview", "model_index.json"))


def test_python_dash_m_check_models(models):
    if not os.path.isfile(os.path.join(REPO, "consisid_core", "cli", "generate.py")):
        pytest.skip("consisid_core/cli/generate.py does not exist yet: the dispatcher imports every sub-command")
    done = subprocess.run([sys.executable, "-m", "consisid_core", "check-models", "--models-dir", str(models)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "all files found" in done.stdout


# ---------------------------------------------------------------- deep check before loading (generate's pre-load check)


def _onnx_bytes() -> bytes:
    """A whole one-node ONNX model."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph).SerializeToString()


def _real_safetensors(path, **tensors) -> None:
    import torch
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({k: torch.zeros(v) for k, v in (tensors or {"w": (4, 4)}).items()}, str(path))


def test_format_checks_accept_whole_files_and_name_what_is_wrong(tmp_path):
    from consisid_core.file_formats import format_problem

    good = tmp_path / "good.safetensors"
    _real_safetensors(good)
    data = good.read_bytes()
    cut, longer = tmp_path / "cut.safetensors", tmp_path / "long.safetensors"
    cut.write_bytes(data[:-1])
    longer.write_bytes(data + b"\0")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes((20).to_bytes(8, "little") + b"<html>not json</html>")
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 60]}}).encode()
    wrong = tmp_path / "wrong.safetensors"  # 16 F32 values need 64 bytes, the header says 60
    wrong.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 60)
    onnx_good, onnx_cut, onnx_empty = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "c.onnx"
    onnx_good.write_bytes(_onnx_bytes())
    onnx_cut.write_bytes(_onnx_bytes()[:-5])
    onnx_empty.write_bytes(b"")
    html = tmp_path / "page.pth"
    html.write_bytes(b"<!DOCTYPE html><html>404</html>")
    pickled = tmp_path / "legacy.pth"
    pickled.write_bytes(b"\x80\x02}q\x00.")
    assert format_problem(good) is None and format_problem(onnx_good) is None and format_problem(pickled) is None
    assert "1 bytes more than its header" in format_problem(longer)
    assert "of" in format_problem(cut) and "interrupted download" in format_problem(cut)
    assert "not JSON" in format_problem(junk)
    assert "its shape and dtype need 64" in format_problem(wrong)
    assert "past the end of the file" in format_problem(onnx_cut)
    assert "0 bytes" in format_problem(onnx_empty)
    assert "not a PyTorch checkpoint" in format_problem(html)


def test_deep_check_names_each_broken_file_of_a_model_folder(tmp_path):
    folder = tmp_path / "ConsisID-preview"
    ante = folder / "face_encoder" / "models" / "antelopev2"
    ante.mkdir(parents=True)
    (ante / "scrfd_10g_bnkps.onnx").write_bytes(b"")  # the 0-byte file onnxruntime says "No graph was found" on
    (ante / "glintr100.onnx").write_bytes(_onnx_bytes())  # whole: not reported
    _real_safetensors(folder / "transformer" / "diffusion_pytorch_model.safetensors")  # whole
    vae = folder / "vae" / "diffusion_pytorch_model.safetensors"
    _real_safetensors(vae)
    vae.write_bytes(vae.read_bytes()[:-3])
    write_json(folder / "vae" / "config.json", {"ok": 1})
    (folder / "transformer" / "config.json").write_text("{broken", encoding="utf-8")
    (folder / "face_encoder" / catalog.BISENET_FILE).write_bytes(b"<html>")
    problems = model_status.deep_check(folder)
    named = sorted(os.path.relpath(p.split(": ", 1)[0], folder) for p in problems)
    assert named == sorted([os.path.join("face_encoder", "models", "antelopev2", "scrfd_10g_bnkps.onnx"),
                            os.path.join("vae", "diffusion_pytorch_model.safetensors"),
                            os.path.join("transformer", "config.json"),
                            os.path.join("face_encoder", catalog.BISENET_FILE)]), problems
    assert all("\n" not in p for p in problems)


def _lora(path, tensors: dict) -> str:
    import torch
    from safetensors.torch import save_file

    save_file({k: torch.zeros(s) for k, s in tensors.items()}, str(path))
    return str(path)


def test_lora_header_check_agrees_with_the_check_on_the_loaded_transformer(tmp_path, tiny_model):
    import torch
    from diffusers import ConsisIDTransformer3DModel

    from consisid_core.engine.lora import check_fits, lora_file_problem
    from consisid_core.errors import UnsupportedInputError

    transformer = ConsisIDTransformer3DModel.from_pretrained(str(tiny_model / "transformer"))
    config = json.loads((tiny_model / "transformer" / "config.json").read_text())
    q = transformer.transformer_blocks[0].attn1.to_q
    name = "transformer.transformer_blocks.0.attn1.to_q"
    cases = {
        "fits": {f"{name}.lora_A.weight": (4, q.in_features), f"{name}.lora_B.weight": (q.out_features, 4)},
        "wide": {f"{name}.lora_A.weight": (4, q.in_features + 8), f"{name}.lora_B.weight": (q.out_features, 4)},
        "tall": {f"{name}.lora_A.weight": (4, q.in_features), f"{name}.lora_B.weight": (q.out_features * 2, 4)},
        "other_model": {"unet.down.0.lora_A.weight": (4, 8)},
        "no_layer": {"transformer.transformer_blocks.99.attn1.to_q.lora_A.weight": (4, q.in_features)},
    }
    for label, tensors in cases.items():
        path = _lora(tmp_path / f"{label}.safetensors", tensors)
        header_verdict = lora_file_problem(path, config)
        try:
            check_fits(transformer, {k: torch.zeros(s) for k, s in tensors.items()}, label)
            loaded_verdict = None
        except UnsupportedInputError as exc:
            loaded_verdict = str(exc)
        assert (header_verdict is None) == (loaded_verdict is None), (label, header_verdict, loaded_verdict)
    assert model_status.deep_check(tiny_model, [tmp_path / "fits.safetensors"]) == []
    (problem,) = model_status.deep_check(tiny_model, [tmp_path / "wide.safetensors"])
    assert "does not fit this ConsisID transformer" in problem and "wide.safetensors" in problem
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((tmp_path / "fits.safetensors").read_bytes()[:-4])
    (problem,) = model_status.deep_check(tiny_model, [cut])
    assert problem.startswith(f"LoRA file {cut}:") and "interrupted download" in problem


def _zero_byte_model(folder) -> str:
    """The single-file layout with every file present and 0 bytes long (passes a presence-only check)."""
    names = ["model_index.json", "scheduler/scheduler_config.json", "transformer/config.json",
             "transformer/diffusion_pytorch_model.safetensors", "vae/config.json",
             "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json", "text_encoder/model.safetensors",
             "tokenizer/spiece.model", f"face_encoder/{catalog.EVA_CLIP_FILE}", f"face_encoder/{catalog.RETINAFACE_FILE}",
             f"face_encoder/{catalog.BISENET_FILE}"] + [f"{catalog.ANTELOPEV2_DIR}/{n}" for n in catalog.ANTELOPEV2_FILES]
    for name in names:
        path = os.path.join(folder, *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()
    return str(folder)


def test_generate_refuses_a_folder_of_zero_byte_files_before_loading(tmp_path, monkeypatch, capsys):
    import consisid_core.face
    from consisid_core.cli import main

    def must_not_load(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(consisid_core.face, "load_face_models", must_not_load)
    model = _zero_byte_model(tmp_path / "zeros")
    code = main(["generate", "--model", model, "--out", str(tmp_path / "v.mp4"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: the model is not ready"), err
    assert "scrfd_10g_bnkps.onnx: empty file (0 bytes" in err and "Traceback" not in err
    assert not (tmp_path / "v.mp4").exists()


def test_generate_refuses_a_lora_that_cannot_fit_before_loading(tmp_path, tiny_model, monkeypatch, capsys):
    import consisid_core.face
    from consisid_core.cli import main

    monkeypatch.setattr(consisid_core.face, "load_face_models", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    lora = _lora(tmp_path / "sdxl_style.safetensors", {"lora_unet_down_blocks_0.lora_down.weight": (4, 320)})
    code = main(["generate", "--model", str(tiny_model), "--out", str(tmp_path / "v.mp4"), "--device", "cpu",
                 "--lora", lora])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: "), err
    assert "sdxl_style.safetensors does not fit this ConsisID transformer" in err and "Traceback" not in err


def test_check_models_on_a_fresh_install_points_antelopev2_into_face_encoder(tmp_path):
    for with_face_encoder in (False, True):
        folder = tmp_path / f"fresh_{with_face_encoder}"
        (folder / "transformer").mkdir(parents=True)
        if with_face_encoder:
            (folder / "face_encoder").mkdir()
        status = model_status.check_model_folder(str(folder))
        targets = {f.target for f in status.files if f.component == "antelopev2"}
        assert targets == {os.path.join(str(folder), "face_encoder", "models", "antelopev2", n)
                           for n in catalog.ANTELOPEV2_FILES}, (with_face_encoder, targets)


def test_check_models_refuses_a_file_as_models_dir(tmp_path, capsys):
    from consisid_core.cli import main

    not_a_folder = tmp_path / "models.txt"
    not_a_folder.write_text("x")
    assert main(["check-models", "--models-dir", str(not_a_folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err and "not found" not in err
