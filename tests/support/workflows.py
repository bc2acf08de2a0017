"""The shipped workflows: UI format (0.4) -> API format the way ComfyUI's "Export (API)" does, and the saved
canvas view that shows every node when a workflow is opened.

UI workflows live in example_workflows/ (ComfyUI's template browser lists them by file name, with the same-name
.jpg as thumbnail); their API versions in workflows/api/. `python tests/support/workflows.py` rewrites
workflows/api/*.json from the UI files and fits each UI file's saved view (extra.ds) to its nodes; the workflow
tests check that the shipped files equal both, so the formats describe one graph and every node is in view.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UI_DIR = REPO / "example_workflows"  # the folder name ComfyUI's template browser looks for first
API_DIR = REPO / "workflows" / "api"
BASIC_UI = "ConsisID photo to video (VHS).json"  # the file name is the title in the template browser
CORE_VIDEO_UI = "ConsisID photo to video (core nodes).json"
UI_TO_API = {
    BASIC_UI: "consisid_basic_api.json",
    CORE_VIDEO_UI: "consisid_core_video_api.json",
    "ConsisID video with scores (VHS).json": "consisid_scored_api.json",  # generation + identity scores
    "ConsisID best of takes (VHS).json": "consisid_takes_api.json",  # N seeds ranked by identity, best kept
}
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
UI_ONLY_WIDGETS = ("control_after_generate", "upload")
FRONTEND_ONLY_NODES = ("Note", "MarkdownNote")
SEED_CONTROLS = ("fixed", "increment", "decrement", "randomize")

# Widgets of the core / VHS nodes our workflows use (ComfyUI 0.8 and VideoHelperSuite 1.7), in canvas order.
FOREIGN_WIDGETS = {
    "LoadImage": ["image", "upload"],
    "CreateVideo": ["fps"],
    "SaveVideo": ["filename_prefix", "format", "codec"],
    "VHS_VideoCombine": None,  # VHS saves its widgets as a dict keyed by name
    "PrimitiveStringMultiline": ["value"],  # the one prompt of the scores template
}
FOREIGN_TITLES = {
    "LoadImage": "Load Image",
    "CreateVideo": "Create Video",
    "SaveVideo": "Save Video",
    "VHS_VideoCombine": "Video Combine 🎥🅥🅗🅢",
    "PrimitiveStringMultiline": "String (Multiline)",
}
VHS_UI_ONLY = ("videopreview",)
FOREIGN_INPUT_ORDER = {
    "LoadImage": ["image"],
    "PrimitiveStringMultiline": ["value"],
    "CreateVideo": ["images", "fps", "audio"],
    "SaveVideo": ["video", "filename_prefix", "format", "codec"],
    "VHS_VideoCombine": ["images", "frame_rate", "loop_count", "filename_prefix", "format", "pix_fmt", "crf",
                         "save_metadata", "trim_to_audio", "pingpong", "save_output", "audio", "meta_batch", "vae"],
}


def widget_names(cls) -> list[str]:
    """Widget names of a node class in canvas order, with the UI-only control_after_generate after a seed."""
    spec = cls.INPUT_TYPES()
    names = []
    for category in ("required", "optional"):
        for name, entry in spec.get(category, {}).items():
            kind, options = entry[0], (entry[1] if len(entry) > 1 else {})
            if options.get("forceInput"):
                continue
            if isinstance(kind, list) or kind in WIDGET_TYPES or kind == "COMBO":  # V1 list or V3 COMBO combos
                names.append(name)
                if options.get("control_after_generate") or name in ("seed", "noise_seed"):
                    names.append("control_after_generate")
    return names


def node_widget_names(class_type: str, mappings: dict) -> list[str] | None:
    if class_type in FOREIGN_WIDGETS:
        return FOREIGN_WIDGETS[class_type]
    return widget_names(mappings[class_type])


def input_order(class_type: str, mappings: dict) -> list[str]:
    """Input names in INPUT_TYPES order (how the canvas lists them and how "Export (API)" writes them)."""
    if class_type in FOREIGN_INPUT_ORDER:
        return FOREIGN_INPUT_ORDER[class_type]
    spec = mappings[class_type].INPUT_TYPES()
    return [*spec.get("required", {}), *spec.get("optional", {})]


def ui_to_api(ui: dict, mappings: dict, display_names: dict) -> dict:
    """The API-format prompt of a UI-format workflow (frontend-only nodes dropped, UI-only widgets removed)."""
    links = {link[0]: link for link in ui["links"]}
    api = {}
    for node in sorted(ui["nodes"], key=lambda n: n["id"]):
        class_type = node["type"]
        if class_type in FRONTEND_ONLY_NODES or node.get("mode", 0) == 4:
            continue
        inputs: dict = {}
        values = node.get("widgets_values", [])
        if isinstance(values, dict):
            inputs.update({k: v for k, v in values.items() if k not in VHS_UI_ONLY})
        else:
            names = node_widget_names(class_type, mappings)
            if len(names) != len(values):
                raise ValueError(f"node {node['id']} ({class_type}): {len(values)} widget values for widgets {names}")
            inputs.update({n: v for n, v in zip(names, values) if n not in UI_ONLY_WIDGETS})
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                link = links[slot["link"]]
                inputs[slot["name"]] = [str(link[1]), link[2]]
        order = input_order(class_type, mappings)
        inputs = dict(sorted(inputs.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
        title = node.get("title") or display_names.get(class_type) or FOREIGN_TITLES.get(class_type, class_type)
        api[str(node["id"])] = {"inputs": inputs, "class_type": class_type, "_meta": {"title": title}}
    return api


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def save(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_api_files(mappings: dict, display_names: dict) -> list[Path]:
    written = []
    for ui_name, api_name in UI_TO_API.items():
        api = ui_to_api(load(UI_DIR / ui_name), mappings, display_names)
        target = API_DIR / api_name
        target.parent.mkdir(parents=True, exist_ok=True)
        save(target, api)
        written.append(target)
    return written


def write_views() -> list[Path]:
    """Set each UI workflow's saved view to fit_view() of its nodes."""
    from support.canvas_view import fit_view

    written = []
    for ui_name in UI_TO_API:
        ui = load(UI_DIR / ui_name)
        ui.setdefault("extra", {})["ds"] = fit_view(ui)
        save(UI_DIR / ui_name, ui)
        written.append(UI_DIR / ui_name)
    return written


def _main() -> None:
    import tempfile

    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    import comfy_stub
    from comfy_stub import harness
    from support.pack import PACK_NAME, import_pack

    with tempfile.TemporaryDirectory() as base:
        comfy_stub.activate(base)
        classes, names = harness.node_mappings(import_pack(), name=PACK_NAME)  # as ComfyUI 0.8 registers them
        for path in write_api_files(classes, names) + write_views():
            print("wrote", path.relative_to(REPO))
        comfy_stub.deactivate()


if __name__ == "__main__":
    _main()
