"""A batch job's prompt reaches every node that reads it: when Text Encode's prompt is linked from a string node
(the scores template feeds Text Encode and Identity Score from one String (Multiline)), the job's text goes into
that string node, not over the link."""

from __future__ import annotations

import copy

import pytest

from consisid_core.batch.workflow import WorkflowError, apply_job
from support.pack import REPO
from support.workflows import API_DIR, load

SCORED = "consisid_scored_api.json"
PREVIOUS = REPO / "tests" / "nodes" / "previous_release"
STRING_NODES = ("PrimitiveStringMultiline", "PrimitiveString")  # what ComfyUI 0.8 evaluates to its `value`


def _resolved(workflow: dict, node_id: str, name: str):
    """The text a node's input gets when ComfyUI runs the workflow (string nodes pass their `value` on)."""
    value = workflow[node_id]["inputs"][name]
    while isinstance(value, list):
        source = workflow[value[0]]
        assert source["class_type"] in STRING_NODES, source
        value = source["inputs"]["value"]
    return value


def _only(workflow: dict, class_type: str) -> str:
    (node_id,) = [i for i, n in workflow.items() if n["class_type"] == class_type]
    return node_id


def test_the_job_prompt_reaches_text_encode_and_identity_score():
    workflow = load(API_DIR / SCORED)
    encode, score = _only(workflow, "ConsisIDTextEncode"), _only(workflow, "ConsisIDIdentityScore")
    shipped = _resolved(workflow, encode, "prompt")
    assert shipped == _resolved(workflow, score, "prompt") and isinstance(workflow[encode]["inputs"]["prompt"], list)

    patched = apply_job(workflow, "face.png", "a woman reading in a library", "blurry")
    assert _resolved(patched, encode, "prompt") == "a woman reading in a library"
    assert _resolved(patched, score, "prompt") == "a woman reading in a library", "CLIPScore scores the job's prompt"
    assert patched[encode]["inputs"]["prompt"] == workflow[encode]["inputs"]["prompt"], "the link is kept"
    assert patched[encode]["inputs"]["negative_prompt"] == "blurry"
    assert _resolved(workflow, score, "prompt") == shipped, "the loaded workflow is left untouched"


def test_a_linked_negative_prompt_and_a_chain_of_string_nodes_are_followed():
    workflow = load(API_DIR / SCORED)
    encode = _only(workflow, "ConsisIDTextEncode")
    workflow["90"] = {"class_type": "PrimitiveString", "inputs": {"value": "ugly"}}
    workflow["91"] = {"class_type": "SomePackStringNode", "inputs": {"value": ["90", 0], "enabled": True}}
    workflow[encode]["inputs"]["negative_prompt"] = ["91", 0]
    patched = apply_job(workflow, "face.png", "a man", "washed out")
    assert patched["90"]["inputs"]["value"] == "washed out"
    assert patched["91"]["inputs"]["value"] == ["90", 0]
    untouched = apply_job(workflow, "face.png", "a man")  # no negative prompt in the job: the workflow's stays
    assert untouched["90"]["inputs"]["value"] == "ugly"


def test_a_typed_prompt_is_still_replaced():
    workflow = load(API_DIR / "consisid_basic_api.json")
    (encode,) = [i for i, n in workflow.items() if n["class_type"] == "ConsisIDTextEncode"]
    assert isinstance(workflow[encode]["inputs"]["prompt"], str)
    assert apply_job(workflow, "face.png", "a child laughing")[encode]["inputs"]["prompt"] == "a child laughing"


@pytest.mark.parametrize("source, message", [
    ({"class_type": "StringConcatenate", "inputs": {"string_a": "a", "string_b": "b", "delimiter": " "}},
     "comes from node 95 (StringConcatenate), which has no single text `value` to set"),
    ({"class_type": "ImageToPrompt", "inputs": {"image": ["1", 0]}},
     "comes from node 95 (ImageToPrompt), which has no single text `value` to set"),
    ({"class_type": "PrimitiveInt", "inputs": {"value": 3}}, "comes from node 95 (PrimitiveInt)"),
])
def test_a_link_to_something_that_cannot_be_set_is_refused_naming_it(source, message):
    workflow = load(API_DIR / SCORED)
    workflow["95"] = source
    workflow["23"]["inputs"]["value"] = ["95", 0]
    with pytest.raises(WorkflowError, match="prompt of node 8 \\(ConsisIDTextEncode\\)") as caught:
        apply_job(copy.deepcopy(workflow), "face.png", "a man")
    assert message in str(caught.value)


def test_a_link_to_a_missing_node_or_a_circle_is_refused():
    workflow = load(API_DIR / SCORED)
    workflow["23"]["inputs"]["value"] = ["96", 0]
    with pytest.raises(WorkflowError, match="linked to node 96, which is not in the workflow"):
        apply_job(workflow, "face.png", "a man")
    workflow["96"] = {"class_type": "PrimitiveString", "inputs": {"value": ["23", 0]}}
    with pytest.raises(WorkflowError, match="linked in a circle"):
        apply_job(workflow, "face.png", "a man")


def test_the_previous_releases_typed_copy_in_identity_score_follows_the_job_prompt():
    """The previous release's scores workflow typed the prompt into Identity Score by hand; a job's prompt replaces
    that copy too (a different typed prompt, or none, is the user's choice and stays)."""
    workflow = load(PREVIOUS / SCORED)
    encode, score = _only(workflow, "ConsisIDTextEncode"), _only(workflow, "ConsisIDIdentityScore")
    assert isinstance(workflow[score]["inputs"]["prompt"], str)
    assert workflow[score]["inputs"]["prompt"] == _resolved(workflow, encode, "prompt"), "a typed copy"
    patched = apply_job(workflow, "face.png", "a woman reading in a library")
    assert _resolved(patched, score, "prompt") == "a woman reading in a library"

    for own in ("a portrait, sharp", ""):
        workflow[score]["inputs"]["prompt"] = own
        assert apply_job(workflow, "face.png", "a man")[score]["inputs"]["prompt"] == own
