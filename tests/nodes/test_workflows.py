"""The shipped workflows: UI and API versions describe one graph, every node type exists, and widget values
follow INPUT_TYPES order (a seed followed by its control_after_generate value in the UI format)."""

from __future__ import annotations

import json

import pytest

from support.node_graph import FACE_FILE, MODEL_NAME
from support.pack import REPO
from support.workflows import (
    FOREIGN_WIDGETS, FRONTEND_ONLY_NODES, SEED_CONTROLS, UI_TO_API, WIDGET_TYPES, load, ui_to_api, widget_names,
)

CORE_NODES = {"LoadImage", "CreateVideo", "SaveVideo"}
VHS_NODES = {"VHS_VideoCombine"}
PAIRS = sorted(UI_TO_API.items())


def _ui(name):
    return load(REPO / "workflows" / name)


def _api(name):
    return load(REPO / "workflows" / "api" / name)


@pytest.mark.parametrize("ui_name, api_name", PAIRS)
def test_ui_and_api_describe_the_same_graph(comfyui, ui_name, api_name):
    assert ui_to_api(_ui(ui_name), comfyui.pack.NODE_CLASS_MAPPINGS, comfyui.pack.NODE_DISPLAY_NAME_MAPPINGS) == _api(api_name)


@pytest.mark.parametrize("ui_name, api_name", PAIRS)
def test_every_node_type_is_ours_core_or_vhs(comfyui, ui_name, api_name):
    ours = set(comfyui.pack.NODE_CLASS_MAPPINGS)
    types = {n["type"] for n in _ui(ui_name)["nodes"]} - set(FRONTEND_ONLY_NODES)
    assert types <= ours | CORE_NODES | VHS_NODES, types - ours - CORE_NODES - VHS_NODES
    assert ours <= types, "the workflow shows every ConsisID node"
    assert {n["class_type"] for n in _api(api_name).values()} == types


@pytest.mark.parametrize("ui_name", sorted(UI_TO_API))
def test_widget_values_follow_input_types_order(comfyui, ui_name):
    mappings = comfyui.pack.NODE_CLASS_MAPPINGS
    for node in _ui(ui_name)["nodes"]:
        values = node.get("widgets_values", [])
        if node["type"] in FRONTEND_ONLY_NODES or node["type"] not in mappings:
            continue
        cls = mappings[node["type"]]
        names = widget_names(cls)
        assert len(values) == len(names), (node["type"], names, values)
        spec = {**cls.INPUT_TYPES()["required"], **cls.INPUT_TYPES().get("optional", {})}
        for name, value in zip(names, values):
            if name == "control_after_generate":
                assert value in SEED_CONTROLS
                continue
            kind, options = spec[name][0], (spec[name][1] if len(spec[name]) > 1 else {})
            if isinstance(kind, list):
                assert value in kind or name == "model", (node["type"], name, value)
            else:
                assert kind in WIDGET_TYPES
                assert type(value) is {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}[kind], (name, value)
                assert options.get("min", value) <= value <= options.get("max", value), (name, value)
        if "seed" in names:
            assert names[names.index("seed") + 1] == "control_after_generate"


def test_sampler_and_decode_defaults_are_the_contract(comfyui):
    sampler = comfyui.pack.NODE_CLASS_MAPPINGS["ConsisIDSampler"].INPUT_TYPES()["required"]
    defaults = {k: v[1].get("default") for k, v in sampler.items() if len(v) > 1 and "default" in v[1]}
    assert defaults == {"seed": 42, "steps": 50, "cfg": 6.0, "use_dynamic_cfg": False, "width": 720, "height": 480,
                        "num_frames": 49}
    assert sampler["seed"][1]["control_after_generate"] is True
    decode = comfyui.pack.NODE_CLASS_MAPPINGS["ConsisIDDecode"].INPUT_TYPES()["required"]
    assert decode["vae_tiling"][1]["default"] is True


@pytest.mark.parametrize("api_name", sorted(UI_TO_API.values()))
def test_api_workflows_only_need_the_face_image_and_the_model_folder(api_name):
    api = _api(api_name)
    loads = [n for n in api.values() if n["class_type"] == "LoadImage"]
    assert [n["inputs"]["image"] for n in loads] == [FACE_FILE]
    for node in api.values():
        if node["class_type"] in ("ConsisIDModelLoader", "ConsisIDFaceModelsLoader"):
            assert node["inputs"]["model"] == MODEL_NAME
    sampler = next(n for n in api.values() if n["class_type"] == "ConsisIDSampler")["inputs"]
    assert (sampler["width"], sampler["height"], sampler["num_frames"], sampler["steps"]) == (720, 480, 49, 50)


def test_vhs_workflow_writes_h264_mp4_at_8_fps_with_dict_widgets():
    vhs = next(n for n in _ui("consisid_basic.json")["nodes"] if n["type"] == "VHS_VideoCombine")
    values = vhs["widgets_values"]
    assert isinstance(values, dict), "VHS serialises its widgets by name"
    assert values["format"] == "video/h264-mp4" and values["frame_rate"] == 8
    assert {"pix_fmt", "crf", "save_metadata", "loop_count", "filename_prefix", "pingpong", "save_output"} <= set(values)
    create = next(n for n in _ui("consisid_core_video.json")["nodes"] if n["type"] == "CreateVideo")
    assert create["widgets_values"] == [8]
    save = next(n for n in _ui("consisid_core_video.json")["nodes"] if n["type"] == "SaveVideo")
    assert len(save["widgets_values"]) == len(FOREIGN_WIDGETS["SaveVideo"])


@pytest.mark.parametrize("ui_name", sorted(UI_TO_API))
def test_ui_workflow_is_a_consistent_0_4_file(ui_name):
    ui = _ui(ui_name)
    assert ui["version"] == 0.4
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert ui["last_node_id"] == max(nodes) and ui["last_link_id"] == max(link[0] for link in ui["links"])
    for link_id, src, src_slot, dst, dst_slot, kind in ui["links"]:
        assert link_id in nodes[src]["outputs"][src_slot]["links"]
        target = nodes[dst]["inputs"][dst_slot]
        assert target["link"] == link_id and target["type"] == kind == nodes[src]["outputs"][src_slot]["type"]
    note = [n for n in ui["nodes"] if n["type"] == "Note"]
    assert len(note) == 1
    text = note[0]["widgets_values"][0]
    for needle in ("models/consisid/ConsisID-preview", "face_encoder/", "antelopev2", "insightface",
                   "extra_model_paths.yaml", "EVA02_CLIP_L_336_psz14_s6B.pt"):
        assert needle in text
    json.dumps(ui)  # plain JSON types only
