"""The templates' UI files: one prompt feeds Text Encode and Identity Score, and nothing lies where the Sampler's
preview grows after a run (frontend 1.35 sizes it to the node width at the video's 3:2 aspect, measured)."""

from __future__ import annotations

import pytest

from support.canvas_view import intersects, node_rects
from support.workflows import API_DIR, UI_DIR, UI_TO_API, load

SCORES_UI = "ConsisID video with scores (VHS).json"
# After a run a Sampler 320 wide grew from 350 to 562 high (headless Chromium, frontend 1.35.9): by the latent
# preview at the node's width and 3:2 (213), and a margin for its size caption.
PREVIEW_ASPECT = 480 / 720
PREVIEW_MARGIN = 16


def _source(ui: dict, node_type: str, input_name: str) -> tuple[int, int]:
    links = {link[0]: link for link in ui["links"]}
    node = next(n for n in ui["nodes"] if n["type"] == node_type)
    slot = next(s for s in node["inputs"] if s["name"] == input_name)
    assert slot.get("link") is not None, f"{node_type}.{input_name} is a typed copy, not a linked input"
    assert slot.get("widget") == {"name": input_name}, "a widget turned into an input (the frontend 1.35 format)"
    link = links[slot["link"]]
    return link[1], link[2]


def test_one_prompt_feeds_text_encode_and_identity_score():
    ui = load(UI_DIR / SCORES_UI)
    source = _source(ui, "ConsisIDTextEncode", "prompt")
    assert _source(ui, "ConsisIDIdentityScore", "prompt") == source, "CLIPScore scores the prompt the video was made of"
    origin = next(n for n in ui["nodes"] if n["id"] == source[0])
    assert origin["outputs"][source[1]]["type"] == "STRING" and origin["widgets_values"][0].strip()

    api = load(API_DIR / UI_TO_API[SCORES_UI])
    encode = next(n for n in api.values() if n["class_type"] == "ConsisIDTextEncode")
    score = next(n for n in api.values() if n["class_type"] == "ConsisIDIdentityScore")
    assert encode["inputs"]["prompt"] == score["inputs"]["prompt"] == [str(source[0]), source[1]]
    assert api[str(source[0])]["class_type"] == "PrimitiveStringMultiline", "a core node of ComfyUI 0.8"


@pytest.mark.parametrize("ui_name", sorted(UI_TO_API))
def test_nothing_lies_where_the_sampler_preview_grows(ui_name):
    ui = load(UI_DIR / ui_name)
    rects = dict(zip((n["id"] for n in ui["nodes"]), node_rects(ui)))
    for sampler in (n for n in ui["nodes"] if n["type"] == "ConsisIDSampler"):
        left, top, right, bottom = rects[sampler["id"]]
        grown = (left, top, right, bottom + sampler["size"][0] * PREVIEW_ASPECT + PREVIEW_MARGIN)
        for node in ui["nodes"]:
            if node is not sampler:
                assert not intersects(grown, rects[node["id"]]), f"the Sampler's preview would cover {node['type']}"
