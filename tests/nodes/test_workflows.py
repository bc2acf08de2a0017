"""The shipped workflows: UI and API versions describe one graph, every node type exists, widget values
follow INPUT_TYPES order (a seed followed by its control_after_generate value in the UI format), the saved
view shows every node on open, and the template browser gets a readable title and a thumbnail for each."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from support.canvas_view import INTERFACE, MIN_SCALE, WINDOW, intersects, node_rects, outside, to_screen, visible_area
from support.node_graph import FACE_FILE, MODEL_NAME
from support.pack import REPO
from support.workflows import (
    API_DIR, BASIC_UI, CORE_VIDEO_UI, FOREIGN_WIDGETS, FRONTEND_ONLY_NODES, SEED_CONTROLS, UI_DIR, UI_TO_API,
    WIDGET_TYPES, load, ui_to_api, widget_names,
)

CORE_NODES = {"LoadImage", "CreateVideo", "SaveVideo", "PrimitiveStringMultiline"}
VHS_NODES = {"VHS_VideoCombine"}
PAIRS = sorted(UI_TO_API.items())
# ComfyUI 0.8 (app/custom_node_manager.py) lists custom_nodes/<pack>/<one of these>/*.json as templates
TEMPLATE_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")


def _ui(name):
    return load(UI_DIR / name)


def _api(name):
    return load(API_DIR / name)


@pytest.mark.parametrize("ui_name, api_name", PAIRS)
def test_ui_and_api_describe_the_same_graph(comfyui, ui_name, api_name):
    assert ui_to_api(_ui(ui_name), comfyui.nodes, comfyui.display_names) == _api(api_name)


@pytest.mark.parametrize("ui_name, api_name", PAIRS)
def test_every_node_type_is_ours_core_or_vhs(comfyui, ui_name, api_name):
    ours = set(comfyui.nodes)
    types = {n["type"] for n in _ui(ui_name)["nodes"]} - set(FRONTEND_ONLY_NODES)
    assert types <= ours | CORE_NODES | VHS_NODES, types - ours - CORE_NODES - VHS_NODES
    from consisid_core import node_ids

    # the generation nodes are in every workflow; optional ones (speed, LoRA, scoring) only where they are used
    required = set(node_ids.REQUIRED) - ({node_ids.SAMPLER, node_ids.DECODE} if node_ids.TAKES in types else set())
    assert required <= types, "the workflow shows every ConsisID generation node (Takes samples and decodes)"
    assert {n["class_type"] for n in _api(api_name).values()} == types


@pytest.mark.parametrize("ui_name", sorted(UI_TO_API))
def test_widget_values_follow_input_types_order(comfyui, ui_name):
    mappings = comfyui.nodes
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
            if kind == "COMBO":  # a V3 combo: its choices are options["options"]
                assert value in options["options"] or name == "model", (node["type"], name, value)
            else:
                assert kind in WIDGET_TYPES
                assert type(value) is {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}[kind], (name, value)
                assert options.get("min", value) <= value <= options.get("max", value), (name, value)
        if "seed" in names:
            assert names[names.index("seed") + 1] == "control_after_generate"


def test_sampler_and_decode_defaults_are_the_contract(comfyui):
    sampler = comfyui.nodes["ConsisIDSampler"].INPUT_TYPES()["required"]
    defaults = {k: v[1].get("default") for k, v in sampler.items() if len(v) > 1 and "default" in v[1]}
    assert defaults == {"seed": 42, "steps": 50, "cfg": 6.0, "use_dynamic_cfg": False, "width": 720, "height": 480,
                        "num_frames": 49}
    assert sampler["seed"][1]["control_after_generate"] is True
    decode = comfyui.nodes["ConsisIDDecode"].INPUT_TYPES()["required"]
    assert decode["vae_tiling"][1]["default"] is True


@pytest.mark.parametrize("api_name", sorted(UI_TO_API.values()))
def test_api_workflows_only_need_the_face_image_and_the_model_folder(api_name):
    api = _api(api_name)
    loads = [n for n in api.values() if n["class_type"] == "LoadImage"]
    assert [n["inputs"]["image"] for n in loads] == [FACE_FILE]
    for node in api.values():
        if node["class_type"] in ("ConsisIDModelLoader", "ConsisIDFaceModelsLoader"):
            assert node["inputs"]["model"] == MODEL_NAME
    sampler = next(n for n in api.values() if n["class_type"] in ("ConsisIDSampler", "ConsisIDTakes"))["inputs"]
    assert (sampler["width"], sampler["height"], sampler["num_frames"], sampler["steps"]) == (720, 480, 49, 50)


def test_vhs_workflow_writes_h264_mp4_at_8_fps_with_dict_widgets():
    vhs = next(n for n in _ui(BASIC_UI)["nodes"] if n["type"] == "VHS_VideoCombine")
    values = vhs["widgets_values"]
    assert isinstance(values, dict), "VHS serialises its widgets by name"
    assert values["format"] == "video/h264-mp4" and values["frame_rate"] == 8
    assert {"pix_fmt", "crf", "save_metadata", "loop_count", "filename_prefix", "pingpong", "save_output"} <= set(values)
    create = next(n for n in _ui(CORE_VIDEO_UI)["nodes"] if n["type"] == "CreateVideo")
    assert create["widgets_values"] == [8]
    save = next(n for n in _ui(CORE_VIDEO_UI)["nodes"] if n["type"] == "SaveVideo")
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


@pytest.mark.parametrize("ui_name", sorted(UI_TO_API))
def test_saved_view_shows_every_node_in_a_1280x720_window(ui_name):
    """Opened in a 1280x720 window, every node (title bar included) lies clear of the sidebar, the top bar and the
    minimap, at a zoom where the canvas still draws the nodes' text; no node covers another."""
    ui = _ui(ui_name)
    ds = ui["extra"]["ds"]
    area = visible_area(WINDOW)
    assert ds["scale"] >= MIN_SCALE, f"at {ds['scale']} the canvas draws nodes without text"
    for node, rect in zip(ui["nodes"], node_rects(ui)):
        screen = to_screen(rect, ds)
        assert not outside(screen, area), (node["type"], [round(v) for v in screen], area)
        for name, rect_on_top in INTERFACE.items():
            assert not intersects(screen, rect_on_top), (node["type"], [round(v) for v in screen], f"under the {name}")
    for (a, ra), (b, rb) in itertools.combinations(zip(ui["nodes"], node_rects(ui)), 2):
        overlap = ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]
        assert not overlap, (a["type"], b["type"])


def test_each_ui_workflow_is_a_template_with_a_readable_title_and_a_thumbnail():
    """The template browser (frontend 1.35) titles a pack's template by its file name and shows <name>.jpg."""
    from PIL import Image

    names = sorted(p.name for p in UI_DIR.glob("*.json"))
    assert names == sorted(UI_TO_API), "every UI workflow, and nothing else, is listed as a template"
    for name in names:
        title = name[:-len(".json")]
        assert re.fullmatch(r"ConsisID [a-z ]+ \([A-Za-z ]+\)", title) and len(title) <= 36, (
            f"{title!r}: a readable title that fits a template card")
        with Image.open(UI_DIR / f"{title}.jpg") as thumb:
            assert thumb.format == "JPEG" and thumb.size[0] == thumb.size[1] >= 448, (name, thumb.format, thumb.size)
            colours = thumb.convert("RGB").resize((64, 64)).getcolors(64 * 64)
            assert colours is None or len(colours) > 200, "a picture, not a blank card"
    for folder in TEMPLATE_FOLDERS:
        if folder != UI_DIR.name:
            assert not list((REPO / folder).glob("*.json")), f"{folder}/*.json would be listed as templates too"
