"""The templates' UI files: one prompt feeds Text Encode and Identity Score, nothing lies where the Sampler's
preview grows after a run (frontend 1.35 sizes it to the node width at the video's 3:2 aspect, measured), and each
note's text fits its box without scrolling."""

from __future__ import annotations

import textwrap

import pytest

from support.canvas_view import intersects, node_rects
from support.workflows import API_DIR, UI_DIR, UI_TO_API, load

SCORES_UI = "ConsisID video with scores (VHS).json"
# After a run a Sampler 320 wide grew from 350 to 562 high (headless Chromium, frontend 1.35.9): by the latent
# preview at the node's width and 3:2 (213), and a margin for its size caption.
PREVIEW_ASPECT = 480 / 720
PREVIEW_MARGIN = 16
# A Note's text box in frontend 1.35.9 (headless Chromium, measured at zoom 1): 10px monospace, 6.02 px a character
# and 11 px a line, 2 px padding; the box is the node less 20 px wide and 22 px high.
NOTE_CHAR_PX, NOTE_LINE_PX, NOTE_PADDING_PX, NOTE_INSET = 6.0205, 11, 2, (20, 22)


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


def note_lines(text: str, width: float) -> tuple[int, int]:
    """(lines the text wraps to, lines that fit) in a Note `width` px wide, wrapped at spaces as the text box does."""
    columns = int((width - NOTE_INSET[0] - 2 * NOTE_PADDING_PX) / NOTE_CHAR_PX)
    return sum(max(1, len(textwrap.wrap(line, columns, replace_whitespace=False, break_on_hyphens=False)))
               for line in text.split("\n")), columns


@pytest.mark.parametrize("ui_name", sorted(UI_TO_API))
def test_each_note_shows_all_its_text_without_scrolling(ui_name):
    notes = [n for n in load(UI_DIR / ui_name)["nodes"] if n["type"] in ("Note", "MarkdownNote")]
    assert notes, "every template carries a note"
    for note in notes:
        width, height = note["size"]
        lines, columns = note_lines(note["widgets_values"][0], width)
        room = int((height - NOTE_INSET[1] - 2 * NOTE_PADDING_PX) / NOTE_LINE_PX)
        assert lines <= room, f"{note.get('title')}: {lines} lines of {columns} characters, room for {room}"
