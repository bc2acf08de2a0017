"""The stand-in's V3 schema (tests/comfy_stub/comfy_api) and its harness, on the example nodes of
support/v3_examples.py: the V1 dicts ComfyUI 0.8 derives from each input kind, hidden values, validate_inputs errors,
NodeOutput normalisation, class checks. The expected values were read off a real ComfyUI 0.8 (the same examples are
compared with one in comfyui_e2e/test_stub_matches_comfyui.py when COMFYUI_DIR is set)."""

from __future__ import annotations

import json
import sys
import types

import pytest

import comfy_stub
from comfy_stub import harness
from support import v3_examples as EXAMPLES


@pytest.fixture
def api(tmp_path):
    comfy_stub.activate(tmp_path)
    yield comfy_stub.api_module("comfy_api.latest")
    comfy_stub.deactivate()


@pytest.fixture
def examples(api):
    return EXAMPLES.build(api.io, api.ui)


def _run(prompt: dict, mappings: dict) -> harness.RunResult:
    return harness.execute(json.loads(json.dumps(prompt)), mappings)


def _errors(prompt: dict, mappings: dict) -> dict:
    with pytest.raises(harness.PromptError) as error:
        _run(prompt, mappings)
    return {node: sorted((r["type"], r["details"]) for r in reasons) for node, reasons in error.value.node_errors.items()}


# ------------------------------------------------------------------------------------------------ V1 views


def test_widget_inputs_give_comfyuis_v1_dicts(examples):
    spec = examples["ExampleWidgets"].INPUT_TYPES()

    assert list(spec) == ["required", "optional"]
    assert list(spec["required"]) == ["seed", "count", "linked_int", "scale", "plain_float", "prompt", "name", "tiling",
                                      "mode", "flavour", "picture"]
    required, optional = spec["required"], spec["optional"]
    assert required["seed"] == ("INT", {"display_name": "Seed", "tooltip": "a seed", "default": 42, "min": 0,
                                        "max": 0xFFFFFFFFFFFFFFFF, "step": 1, "control_after_generate": True})
    assert required["count"] == ("INT", {"default": 3, "min": 1, "max": 9, "display": "slider"})
    assert type(required["count"][1]["display"]) is str  # INT: the plain value
    assert required["linked_int"] == ("INT", {"lazy": True, "forceInput": True})
    assert required["scale"] == ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05, "round": 0.01,
                                           "display": "slider"})
    assert isinstance(required["scale"][1]["display"], EXAMPLES.enum.Enum)  # FLOAT: 0.8 keeps the enum member
    assert required["plain_float"] == ("FLOAT", {})
    assert required["prompt"] == ("STRING", {"default": "hi", "multiline": True, "placeholder": "say it",
                                             "dynamicPrompts": False})
    assert required["name"] == ("STRING", {"socketless": True, "multiline": False})  # multiline=False is kept
    assert required["tiling"] == ("BOOLEAN", {"tooltip": "tile it", "default": True, "label_on": "on", "label_off": "off"})
    assert required["mode"] == ("COMBO", {"default": "slow", "multiselect": False, "options": ["fast", "slow"],
                                          "control_after_generate": False})
    assert required["flavour"] == ("COMBO", {"default": "sour", "multiselect": False, "options": ["sweet", "sour"]})
    assert required["picture"] == ("COMBO", {"multiselect": False, "options": ["a.png"], "image_upload": True,
                                             "image_folder": "input",
                                             "remote": {"route": "/example/list", "refresh_button": True,
                                                        "control_after_refresh": "first", "timeout": 1000}})
    assert optional == {"extra": ("INT", {"rawLink": True, "note": "kept"}),
                        "thing": ("EXAMPLE_THING", {"tooltip": "a custom socket"}), "anything": ("*", {})}


def test_socket_inputs_hidden_values_and_outputs_without_ids(examples):
    sockets = examples["ExampleSockets"]

    assert sockets.INPUT_TYPES() == {
        "required": {"image": ("IMAGE", {}), "latent": ("LATENT", {}), "clip": ("CLIP", {"display_name": "CLIP"}),
                     "model": ("MODEL", {}), "vae": ("VAE", {"tooltip": "the vae"})},
        "optional": {"mask": ("MASK", {}), "cond": ("CONDITIONING", {}), "audio": ("AUDIO", {}), "video": ("VIDEO", {})},
        "hidden": {"unique_id": ("UNIQUE_ID",), "dynprompt": ("DYNPROMPT",),  # an API node adds the two keys
                   "auth_token_comfy_org": ("AUTH_TOKEN_COMFY_ORG",), "api_key_comfy_org": ("API_KEY_COMFY_ORG",)}}
    assert sockets.RETURN_TYPES == ["IMAGE", "LATENT", "MASK", "CONDITIONING", "MODEL", "VAE", "CLIP", "AUDIO", "VIDEO"]
    assert sockets.RETURN_NAMES == ["IMAGE", "LATENT", "the mask", "CONDITIONING", "MODEL", "VAE", "CLIP", "AUDIO", "VIDEO"]
    assert sockets.OUTPUT_TOOLTIPS == [None] * 9
    assert (sockets.INPUT_IS_LIST, sockets.DEPRECATED, sockets.API_NODE, sockets.CATEGORY) == (True, True, True, "examples/sockets")


def test_class_properties_come_from_the_schema(examples):
    widgets = examples["ExampleWidgets"]

    assert widgets.RETURN_TYPES == ["INT", "COMBO", "EXAMPLE_THING", "STRING"]
    assert widgets.RETURN_NAMES == ["seed", "mode_out", "EXAMPLE_THING", "STRING"]  # display_name, id, else the type
    assert widgets.OUTPUT_TOOLTIPS == ["the seed", None, "the thing", None]
    assert widgets.OUTPUT_IS_LIST == [False, False, False, True]
    assert (widgets.OUTPUT_NODE, widgets.EXPERIMENTAL, widgets.NOT_IDEMPOTENT, widgets.DEPRECATED) == (False, True, True, False)
    assert (widgets.CATEGORY, widgets.DESCRIPTION, widgets.FUNCTION) == ("examples/widgets", "Widgets of every kind.", "EXECUTE_NORMALIZED")
    assert examples["ExampleAsync"].FUNCTION == "EXECUTE_NORMALIZED_ASYNC"


def test_node_info_is_comfyuis_object_info_entry(examples):
    show = examples["ExampleShowDict"]
    show.RELATIVE_PYTHON_MODULE = "custom_nodes.examples"

    assert show.GET_NODE_INFO_V1() == {
        "input": {"required": {"text": ("STRING", {"forceInput": True, "multiline": False}),
                               "times": ("INT", {"default": 1, "min": 1, "max": 3})},
                  "optional": {"case": ("COMBO", {"default": "lower", "multiselect": False, "options": ["upper", "lower"]})},
                  "hidden": {"prompt": ("PROMPT",), "extra_pnginfo": ("EXTRA_PNGINFO",)}},  # added for an output node
        "input_order": {"required": ["text", "times"], "optional": ["case"], "hidden": ["prompt", "extra_pnginfo"]},
        "output": ["STRING"], "output_is_list": [False], "output_name": ["text"], "output_tooltips": [None],
        "output_matchtypes": None, "name": "ExampleShowDict", "display_name": None, "description": "",
        "python_module": "custom_nodes.examples", "category": "examples", "output_node": True, "deprecated": False,
        "experimental": False, "api_node": False}


def test_missing_define_schema_or_execute_raises(api):
    io = api.io

    class NoSchema(io.ComfyNode):
        @classmethod
        def execute(cls):
            return io.NodeOutput()

    class NoExecute(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="NoExecute")

    with pytest.raises(Exception, match="No define_schema function was defined for node class NoSchema"):
        NoSchema.GET_SCHEMA()
    with pytest.raises(Exception, match="No define_schema function"):
        NoSchema()
    with pytest.raises(Exception, match="No execute function was defined for node class NoExecute"):
        _ = NoExecute.RETURN_TYPES
    with pytest.raises(NotImplementedError):
        NoSchema.INPUT_TYPES()  # like 0.8: INPUT_TYPES() does not check the class, define_schema is the placeholder


def test_repeated_ids_are_refused(api):
    io = api.io

    class Twice(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Twice", inputs=[io.Int.Input("a"), io.Float.Input("a")],
                             outputs=[io.Int.Output("x"), io.Int.Output("x")])

        @classmethod
        def execute(cls, a):
            return io.NodeOutput(a, a)

    with pytest.raises(ValueError, match=r"Input ids must be unique, but \['a'\] are not.\nOutput ids must be unique"):
        Twice.GET_SCHEMA()


# ------------------------------------------------------------------------------------------------ running


def test_hidden_values_reach_v3_nodes_only_through_cls_hidden(examples):
    result = _run(EXAMPLES.PROMPTS["hidden and ui"], examples)

    seen = json.loads(result.outputs["2"][0])
    assert seen == {"label": "x", "unique_id": "2", "prompt_nodes": ["1", "2", "3", "4"], "extra_pnginfo": None,
                    "api_key": None}  # asked for prompt/unique_id/extra_pnginfo; api_key not asked -> None
    assert examples["ExampleHidden"].hidden is None, "the node class itself is untouched (the run used a clone)"
    assert result.ui["4"] == {"text": ["hello", "hello"], "hidden_prompt": [True]}  # output nodes get the prompt


def test_validate_inputs_sees_an_empty_prompt_and_long_combos_are_summed_up(examples):
    """Before the run ComfyUI has no dynprompt yet: validate_inputs sees PROMPT as {} (the node id is there)."""
    assert _run(EXAMPLES.PROMPTS["validation view"], examples).ui["2"] == {"text": ["v o3 ['1', '2'] 1"]}
    assert _errors(EXAMPLES.PROMPTS["pick not in a long list"], examples) == {
        "1": [("value_not_in_list", "pick: 'zzz' not in (list of length 25)")]}


def test_custom_hidden_inputs_reach_v1_nodes_only(examples, api):
    """A V1 node gets a hidden value the prompt carries; ComfyUI 0.8 drops every hidden name of a V3 node."""
    result = _run(EXAMPLES.PROMPTS["v1 custom hidden"], examples)
    assert result.outputs["2"] == ("v:2:None:2",)
    assert _errors(EXAMPLES.PROMPTS["v1 custom hidden refused"], examples) == {"2": [
        ("custom_validation_failed", "size - size 10x10 refused on 2"),
        ("custom_validation_failed", "unique_id - size 10x10 refused on 2"), ("value_bigger_than_max", "n")]}

    io, seen = api.io, {}

    class V3WithSize(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="V3WithSize", is_output_node=True, inputs=[io.Int.Input("n", default=1)],
                             hidden=[io.Hidden.unique_id])

        @classmethod
        def validate_inputs(cls, **kwargs):
            seen["validate"] = dict(kwargs)
            return True

        @classmethod
        def execute(cls, **kwargs):
            seen["execute"] = dict(kwargs)

    harness.execute({"1": {"class_type": "V3WithSize", "inputs": {"n": 3, "size": "10x10", "unique_id": "x"}}},
                    {"V3WithSize": V3WithSize})
    assert seen == {"validate": {"n": 3}, "execute": {"n": 3}}


def test_validate_inputs_failure_is_filed_once_per_argument(examples):
    assert _errors(EXAMPLES.PROMPTS["size too large"], examples) == {"2": [
        ("custom_validation_failed", "height - 128x64 is too large (node 2)"),
        ("custom_validation_failed", "text - 128x64 is too large (node 2)"),
        ("custom_validation_failed", "width - 128x64 is too large (node 2)")]}


def test_validate_inputs_gets_linked_inputs_as_none_and_owns_its_ranges(examples):
    assert _run(EXAMPLES.PROMPTS["size ok"], examples).ui["3"] == {"text": ["t 64x32x9"]}  # linked text was None
    assert "got 'typed'" in _errors(EXAMPLES.PROMPTS["size given as text"], examples)["2"][0][1]
    # width 200 > max 128 is the validate function's business (it takes width); frames is still range-checked
    assert _errors(EXAMPLES.PROMPTS["size out of range"], examples) == {"2": [("value_bigger_than_max", "frames")]}
    # **kwargs takes every input: no range check at all, and the failure is filed for each given input
    assert _run(EXAMPLES.PROMPTS["kwargs check"], examples).ui["3"] == {"text": ["k:50"]}
    assert _errors(EXAMPLES.PROMPTS["kwargs check fails"], examples) == {"2": [
        ("custom_validation_failed", "n - n must stay below 100"), ("custom_validation_failed", "text - n must stay below 100")]}


def test_validate_inputs_counts_only_when_a_node_class_defines_it(api):
    io = api.io

    class Parent(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id=cls.__name__, is_output_node=True, inputs=[io.Int.Input("n", min=0, max=5)])

        @classmethod
        def execute(cls, n):
            return None

    class Child(Parent):
        @classmethod
        def validate_inputs(cls, n):
            return n != 9 or "nine"

    class GrandChild(Child):
        pass

    class Aliased(Parent):
        validate_inputs = io.ComfyNode.__dict__["validate_inputs"]  # the placeholder itself, defined again

    def errors(cls):
        try:
            harness.execute({"1": {"class_type": "N", "inputs": {"n": 9}}}, {"N": cls})
        except harness.PromptError as error:
            return [(r["type"], r["details"]) for r in error.node_errors["1"]]
        return []

    assert errors(Parent) == errors(Aliased) == [("value_bigger_than_max", "n")]  # the placeholder is no check
    assert errors(Child) == errors(GrandChild) == [("custom_validation_failed", "n - nine")]


def test_validation_errors_as_comfyui_files_them(examples):
    assert _errors(EXAMPLES.PROMPTS["missing, unconvertible, raising"], examples) == {
        "1": [("required_input_missing", "label")],
        "2": [("exception_during_inner_validation", "'>' not supported between instances of 'str' and 'int'")],
        "4": [("value_bigger_than_max", "times")]}
    assert _errors(EXAMPLES.PROMPTS["type mismatch"], examples) == {
        "3": [("return_type_mismatch", "text, received_type(INT) mismatch input_type(STRING)")]}
    assert _errors(EXAMPLES.PROMPTS["wrong combo, unconvertible int"], examples) == {"2": [
        ("invalid_input_type", "times, x, invalid literal for int() with base 10: 'x'"),
        ("value_not_in_list", "case: 'title' not in ['upper', 'lower']")]}


def test_returns_are_normalised_like_execute_normalized(examples, api):
    io = api.io
    result = _run(EXAMPLES.PROMPTS["hidden and ui"], examples)
    assert result.outputs["1"] == ("hello",)  # a plain tuple
    assert result.ui["3"]["text"][0].startswith('{"api_key"')  # NodeOutput(ui=ui.PreviewText) -> {"text": [...]}
    assert result.outputs["3"] == ()  # an output node without outputs
    assert result.outputs["4"] == ("hellohello",)  # NodeOutput(value, ui={...})
    assert _run(EXAMPLES.PROMPTS["async"], examples).ui["3"] == {"text": ["QUIET"]}
    assert _run(EXAMPLES.PROMPTS["combo upper"], examples).ui["2"]["text"] == ["C", "C", "C"]  # "3" converted to 3

    text = examples["ExampleText"]
    assert text.EXECUTE_NORMALIZED(text="a").result == ("a",)
    assert io.NodeOutput().result is None and io.NodeOutput(1, 2)[1] == 2
    from_dict = io.NodeOutput.from_dict({"result": (1,), "ui": {"text": ["u"]}})
    assert (from_dict.result, from_dict.ui, from_dict.expand) == ((1,), {"text": ["u"]}, None)

    class Returns(io.ComfyNode):
        answer = None

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Returns", outputs=[io.Int.Output()])

        @classmethod
        def execute(cls):
            return cls.answer

    Returns.GET_SCHEMA()  # as ComfyUI does when it loads a node (it sets Returns.SCHEMA)
    cases = {None: None, (5,): (5,), io.NodeOutput(6): (6,)}
    for answer, expected in cases.items():
        Returns.answer = answer
        assert Returns.EXECUTE_NORMALIZED().result == expected
    Returns.answer = [7]
    with pytest.raises(Exception, match="Invalid return type from node: <class 'list'>"):
        Returns.EXECUTE_NORMALIZED()
    Returns.answer = io.NodeOutput(8, expand={"1": {}})
    with pytest.raises(Exception, match="Node Returns is not expandable"):
        Returns.EXECUTE_NORMALIZED()


def test_execute_runs_on_a_locked_clone(examples):
    with pytest.raises(harness.NodeFailure) as failure:
        _run(EXAMPLES.PROMPTS["class write refused"], examples)
    assert isinstance(failure.value.exception, AttributeError)
    assert "Cannot modify class attribute 'last_text'" in str(failure.value.exception)
    assert not hasattr(examples["ExampleWritesClass"], "last_text")


# ------------------------------------------------------------------------------------------------ loading


def test_activation_makes_comfy_api_importable_and_deactivation_removes_it(tmp_path):
    comfy_stub.deactivate()
    with pytest.raises(ImportError):
        __import__("comfy_api.v0_0_2")
    comfy_stub.activate(tmp_path)
    try:
        from comfy_api.v0_0_2 import IO, UI, ComfyExtension, io, ui

        assert io is IO and ui is UI and io.ComfyNode is comfy_stub.api_module().io.ComfyNode
        assert ComfyExtension is comfy_stub.api_module("comfy_api.latest").ComfyExtension
    finally:
        comfy_stub.deactivate()
    assert not [name for name in sys.modules if name.split(".")[0] == "comfy_api"]
    comfy_stub.activate(tmp_path)  # the same classes come back: nodes imported earlier stay V3 nodes
    try:
        assert sys.modules["comfy_api.v0_0_2"].io.ComfyNode is io.ComfyNode
    finally:
        comfy_stub.deactivate()


def test_node_mappings_from_a_comfy_entrypoint(examples, api):
    class Extension(api.ComfyExtension):
        async def get_node_list(self):
            return [examples["ExampleText"], examples["ExampleWidgets"]]

    module = types.ModuleType("my_pack")
    module.comfy_entrypoint = Extension
    classes, names = harness.node_mappings(module)

    assert classes == {"ExampleText": examples["ExampleText"], "ExampleWidgets": examples["ExampleWidgets"]}
    assert names == {"ExampleWidgets": "Example Widgets"}  # only schemas with a display name
    assert examples["ExampleText"].GET_NODE_INFO_V1()["python_module"] == "custom_nodes.my_pack"
