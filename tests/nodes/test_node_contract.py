"""Every node keeps the contract ComfyUI and users rely on: ids and display names, the ConsisID category, a
description, a tooltip on every input, the pack's own socket types, and INPUT_TYPES ComfyUI can serve."""

from __future__ import annotations

import json

import pytest

CONTRACT = {
    "ConsisIDModelLoader": "ConsisID DiT Loader",
    "ConsisIDFaceModelsLoader": "ConsisID Face Models Loader",
    "ConsisIDFaceCropAlign": "Face Crop&Align",
    "ConsisIDLandmarkRenderer": "Landmark Renderer",
    "ConsisIDGlobalExtractor": "Global Extractor",
    "ConsisIDLocalExtractor": "Local Extractor",
    "ConsisIDTextEncode": "ConsisID Text Encode",
    "ConsisIDSampler": "ConsisID Sampler",
    "ConsisIDDecode": "ConsisID Decode",
    "ConsisIDTeaCache": "ConsisID TeaCache",
    "ConsisIDLoRA": "ConsisID LoRA",
    "ConsisIDEvalModelsLoader": "ConsisID Eval Models Loader",
    "ConsisIDIdentityScore": "ConsisID Identity Score",
    "ConsisIDParallelWorkers": "ConsisID Parallel Workers",
    "ConsisIDTakes": "ConsisID Takes",
    "ConsisIDPickTake": "ConsisID Pick Take",
}
CORE_TYPES = {"IMAGE", "CLIP", "INT", "FLOAT", "STRING", "BOOLEAN"}


def test_ids_and_display_names(comfyui):
    assert comfyui.display_names == CONTRACT
    assert set(comfyui.nodes) == set(CONTRACT)


def test_comfyui_gets_the_v3_nodes_from_the_entry_point(comfyui):
    """What ComfyUI 0.8's load_custom_node does with comfy_entrypoint: schema ids and display names, no V1 mapping."""
    import asyncio

    from comfy_api.v0_0_2 import ComfyExtension, io

    assert not hasattr(comfyui.pack, "NODE_CLASS_MAPPINGS"), "ComfyUI would read the V1 mapping instead"
    extension = comfyui.pack.comfy_entrypoint()
    assert isinstance(extension, ComfyExtension)
    node_list = asyncio.run(extension.get_node_list())
    assert all(isinstance(cls, type) and issubclass(cls, io.ComfyNode) for cls in node_list)
    schemas = [cls.GET_SCHEMA() for cls in node_list]
    assert {s.node_id: s.display_name for s in schemas} == CONTRACT
    from support.pack import pack_module

    registry = pack_module("nodes")  # the id -> class registry tests and tools use: the same classes
    assert {s.node_id: cls for s, cls in zip(schemas, node_list)} == registry.NODES_BY_ID
    assert registry.DISPLAY_NAMES == CONTRACT


@pytest.mark.parametrize("node_id", sorted(CONTRACT))
def test_node_is_described_and_typed(comfyui, node_id):
    from support.pack import pack_module

    pack_types = set(pack_module("nodes.types").PACK_TYPES)
    cls = comfyui.nodes[node_id]
    assert cls.CATEGORY == "ConsisID"
    assert len(cls.DESCRIPTION) > 60
    assert callable(getattr(cls, cls.FUNCTION))
    assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS)
    assert all(len(tip or "") > 15 for tip in cls.OUTPUT_TOOLTIPS), f"{node_id} has an output without a tooltip"
    assert set(cls.RETURN_TYPES) <= pack_types | {"IMAGE", "FLOAT", "STRING", "INT"}  # scores: FLOAT/STRING; seed: INT
    spec = cls.INPUT_TYPES()
    json.dumps(spec)  # /object_info serialises it
    for category in ("required", "optional"):
        for name, entry in spec.get(category, {}).items():
            kind, options = entry[0], entry[1]
            assert len(options.get("tooltip", "")) > 15, f"{node_id}.{name} has no tooltip"
            assert kind == "COMBO" or kind in pack_types | CORE_TYPES, (node_id, name, kind)
            if kind == "COMBO" and "default" in options:
                assert options["default"] in options["options"]
            if "default" in options and "min" in options:
                assert options["min"] <= options["default"] <= options["max"]
    execute_args = cls.execute.__func__.__code__.co_varnames
    assert set(spec["required"]) | set(spec.get("optional", {})) <= set(execute_args)


def test_no_core_type_name_is_reused_for_our_objects(comfyui):
    from support.pack import pack_module

    types = pack_module("nodes.types")
    assert all(t.startswith("CONSISID_") for t in types.PACK_TYPES)


def test_model_combo_lists_model_folders_only(comfyui):
    root = comfyui.root / "models" / "consisid"
    (root / "not_a_model").mkdir()
    (root / "stray.safetensors").write_bytes(b"")
    try:
        options = comfyui.nodes["ConsisIDModelLoader"].INPUT_TYPES()["required"]["model"][1]["options"]
    finally:
        (root / "not_a_model").rmdir()
        (root / "stray.safetensors").unlink()
    assert options == ["ConsisID-preview"]


def test_model_folders_from_extra_model_paths_are_listed(comfyui, tmp_path):
    other = tmp_path / "elsewhere" / "MyConsisID"
    (other / "transformer").mkdir(parents=True)
    (other / "model_index.json").write_text("{}")
    comfyui.folder_paths.add_model_folder_path("consisid", str(tmp_path / "elsewhere"))  # as extra_model_paths.yaml
    options = comfyui.nodes["ConsisIDFaceModelsLoader"].INPUT_TYPES()["required"]["model"][1]["options"]
    assert options == ["ConsisID-preview", "MyConsisID"]


def test_folders_are_registered_for_comfyui(comfyui):
    fp = comfyui.folder_paths
    assert str(comfyui.root / "models" / "consisid") in fp.get_folder_paths("consisid")
    assert str(comfyui.root / "models" / "insightface") in fp.get_folder_paths("insightface")


def test_empty_install_still_offers_the_expected_folder_name(comfyui, tmp_path):
    """A fresh ComfyUI: the combo shows ConsisID-preview so the shipped workflows load and explain what is missing."""
    fp = comfyui.folder_paths
    saved = fp.folder_names_and_paths["consisid"]
    fp.folder_names_and_paths["consisid"] = ([str(tmp_path / "empty")], set())
    models_dir = fp.models_dir
    fp.models_dir = str(tmp_path)
    try:
        options = comfyui.nodes["ConsisIDModelLoader"].INPUT_TYPES()["required"]["model"][1]["options"]
    finally:
        fp.folder_names_and_paths["consisid"] = saved
        fp.models_dir = models_dir
    assert options == ["ConsisID-preview"]
