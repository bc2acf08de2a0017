"""Workflows saved with the previous release (copies of its shipped files, commit 801f71b, in previous_release/)
still load against today's nodes: the UI files give the same API prompts, every input they set exists and every
required input is set. test_photo_read_once.py runs one of them end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.workflows import UI_TO_API, ui_to_api

PREVIOUS = Path(__file__).parent / "previous_release"


def _load(name: str) -> dict:
    return json.loads((PREVIOUS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("ui_name, api_name", sorted(UI_TO_API.items()))
def test_previous_ui_files_give_their_api_prompts_with_todays_nodes(comfyui, ui_name, api_name):
    """Widget values are positional in UI files: today's widgets must line up with the saved values."""
    converted = ui_to_api(_load(ui_name), comfyui.nodes, comfyui.display_names)
    graph = {i: (n["class_type"], n["inputs"]) for i, n in converted.items()}  # titles (_meta) may change
    assert graph == {i: (n["class_type"], n["inputs"]) for i, n in _load(api_name).items()}


@pytest.mark.parametrize("api_name", sorted(UI_TO_API.values()))
def test_previous_api_prompts_name_only_existing_inputs_and_set_every_required_one(comfyui, api_name):
    mappings = comfyui.nodes
    for node_id, node in _load(api_name).items():
        if node["class_type"] not in mappings:
            continue  # core / VHS nodes
        spec = mappings[node["class_type"]].INPUT_TYPES()
        known = {**spec.get("required", {}), **spec.get("optional", {})}
        assert set(node["inputs"]) <= set(known), (node_id, set(node["inputs"]) - set(known))
        assert set(spec.get("required", {})) <= set(node["inputs"]), (node_id, set(spec["required"]) - set(node["inputs"]))
