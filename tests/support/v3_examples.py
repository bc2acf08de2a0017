"""Small example nodes on ComfyUI's V3 schema (plus one V1 node), shared by the stand-in's tests
(tests/test_comfy_api_stub.py) and the comparison with a real ComfyUI (tests/comfyui_e2e/test_stub_matches_comfyui.py).

Everything here takes the `io` / `ui` modules as arguments, so the same definitions run on the stand-in and on a real
ComfyUI's `comfy_api.v0_0_2`. `describe()` and `api_surface()` turn what ComfyUI derives from a node class, and the
signatures of the io subset, into plain JSON-able values (tuples and enum members tagged) for comparing the two.
"""

from __future__ import annotations

import enum
import inspect
import json

V1_PROPERTIES = ("RETURN_TYPES", "RETURN_NAMES", "OUTPUT_TOOLTIPS", "OUTPUT_NODE", "OUTPUT_IS_LIST", "INPUT_IS_LIST",
                 "CATEGORY", "DESCRIPTION", "FUNCTION", "NOT_IDEMPOTENT", "DEPRECATED", "EXPERIMENTAL", "API_NODE")
IO_TYPES = ("Int", "Float", "String", "Boolean", "Combo", "Image", "Mask", "Latent", "Clip", "Conditioning", "Model",
            "Vae", "Audio", "Video", "AnyType")
LIMIT = 4096  # ExampleSize: width * height above this fails validate_inputs


class Flavour(enum.Enum):
    """Enum options for a Combo input."""

    sweet = "sweet"
    sour = "sour"


def build(io, ui) -> dict[str, type]:
    """The example node classes on `io` / `ui`, by node id."""

    Thing = io.Custom("EXAMPLE_THING")

    class ExampleWidgets(io.ComfyNode):
        """Every widget kind with every option the pack may use."""

        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id="ExampleWidgets", display_name="Example Widgets", category="examples/widgets",
                description="Widgets of every kind.", is_experimental=True, not_idempotent=True,
                inputs=[
                    io.Int.Input("seed", display_name="Seed", tooltip="a seed", default=42, min=0,
                                 max=0xFFFFFFFFFFFFFFFF, step=1, control_after_generate=True),
                    io.Int.Input("count", default=3, min=1, max=9, display_mode=io.NumberDisplay.slider),
                    io.Int.Input("linked_int", force_input=True, lazy=True),
                    io.Float.Input("scale", default=1.0, min=0.0, max=2.0, step=0.05, round=0.01,
                                   display_mode=io.NumberDisplay.slider),
                    io.Float.Input("plain_float"),
                    io.String.Input("prompt", multiline=True, placeholder="say it", default="hi", dynamic_prompts=False),
                    io.String.Input("name", socketless=True),
                    io.Boolean.Input("tiling", default=True, label_on="on", label_off="off", tooltip="tile it"),
                    io.Combo.Input("mode", options=["fast", "slow"], default="slow", control_after_generate=False),
                    io.Combo.Input("flavour", options=Flavour, default=Flavour.sour),
                    io.Combo.Input("picture", options=["a.png"], upload=io.UploadType.image,
                                   image_folder=io.FolderType.input,
                                   remote=io.RemoteOptions("/example/list", refresh_button=True, timeout=1000)),
                    io.Int.Input("extra", optional=True, extra_dict={"note": "kept", "gone": None}, raw_link=True),
                    Thing.Input("thing", optional=True, tooltip="a custom socket"),
                    io.AnyType.Input("anything", optional=True),
                ],
                outputs=[
                    io.Int.Output("seed_out", display_name="seed", tooltip="the seed"),
                    io.Combo.Output("mode_out", options=["fast", "slow"]),
                    Thing.Output(tooltip="the thing"),
                    io.String.Output(is_output_list=True),
                ],
            )

        @classmethod
        def execute(cls, **kwargs):
            return io.NodeOutput(kwargs.get("seed"), kwargs.get("mode"), None, [kwargs.get("prompt")])

    class ExampleSockets(io.ComfyNode):
        """Socket-only inputs of the core types, outputs without ids, hidden values, an API node."""

        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id="ExampleSockets", category="examples/sockets", is_api_node=True, is_deprecated=True,
                is_input_list=True,
                inputs=[io.Image.Input("image"), io.Mask.Input("mask", optional=True), io.Latent.Input("latent"),
                        io.Clip.Input("clip", display_name="CLIP"), io.Conditioning.Input("cond", optional=True),
                        io.Model.Input("model"), io.Vae.Input("vae", tooltip="the vae"), io.Audio.Input("audio", optional=True),
                        io.Video.Input("video", optional=True)],
                outputs=[io.Image.Output(), io.Latent.Output(), io.Mask.Output(display_name="the mask"),
                         io.Conditioning.Output(), io.Model.Output(), io.Vae.Output(), io.Clip.Output(),
                         io.Audio.Output(), io.Video.Output()],
                hidden=[io.Hidden.unique_id, io.Hidden.dynprompt],
            )

        @classmethod
        def execute(cls, **kwargs):
            return io.NodeOutput()

    class ExampleText(io.ComfyNode):
        """A text source: returns a plain tuple (normalised to NodeOutput)."""

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="ExampleText", category="examples",
                             inputs=[io.String.Input("text", default="")], outputs=[io.String.Output("text")])

        @classmethod
        def execute(cls, text):
            return (text,)

    class ExampleHidden(io.ComfyNode):
        """Reports the hidden values it was given (cls.hidden) as text."""

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="ExampleHidden", category="examples",
                             inputs=[io.String.Input("label", default="")],
                             outputs=[io.String.Output("report")],
                             hidden=[io.Hidden.unique_id, io.Hidden.prompt, io.Hidden.extra_pnginfo])

        @classmethod
        def execute(cls, label):
            prompt = cls.hidden.prompt
            seen = {"label": label, "unique_id": cls.hidden.unique_id,
                    "prompt_nodes": sorted(prompt) if isinstance(prompt, dict) else repr(prompt),
                    "extra_pnginfo": cls.hidden.extra_pnginfo, "api_key": cls.hidden.api_key_comfy_org}
            return {"result": (json.dumps(seen, sort_keys=True),)}

    class ExampleShow(io.ComfyNode):
        """An output node: shows a text (ui.PreviewText), returns nothing."""

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="ExampleShow", category="examples", is_output_node=True,
                             inputs=[io.String.Input("text", force_input=True)])

        @classmethod
        def execute(cls, text):
            return io.NodeOutput(ui=ui.PreviewText(text))

    class ExampleShowDict(io.ComfyNode):
        """An output node with an output: ui as a plain dict, and one value."""

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="ExampleShowDict", category="examples", is_output_node=True,
                             inputs=[io.String.Input("text", force_input=True), io.Int.Input("times", default=1, min=1, max=3),
                                     io.Combo.Input("case", options=["upper", "lower"], default="lower", optional=True)],
                             outputs=[io.String.Output("text")])

        @classmethod
        def execute(cls, text, times, case="lower"):
            text = text.upper() if case == "upper" else text
            return io.NodeOutput(text * times, ui={"text": [text] * times, "hidden_prompt": [cls.hidden.prompt is not None]})

    class ExampleSize(io.ComfyNode):
        """validate_inputs on two widgets and a linked input; a failure is filed once per argument."""

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="ExampleSize", category="examples",
                             inputs=[io.String.Input("text", force_input=True),
                                     io.Int.Input("width", default=32, min=8, max=128),
                                     io.Int.Input("height", default=32, min=8, max=128),
                                     io.Int.Input("frames", default=9, min=1, max=49)],
                             outputs=[io.String.Output("text")],
                             hidden=[io.Hidden.unique_id])

        @classmethod
        def validate_inputs(cls, text, width, height):
            if text is not None:
                return f"text should be linked, so unknown here; got {text!r}"
            if width * height > LIMIT:
                return f"{width}x{height} is too large (node {cls.hidden.unique_id})"
            return True

        @classmethod
        def execute(cls, text, width, height, frames):
            return io.NodeOutput(f"{text} {width}x{height}x{frames}")

    class ExampleKwargsCheck(io.ComfyNode):
        """validate_inputs(**kwargs): every given input is passed and skips the min/max checks."""

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="ExampleKwargsCheck", category="examples",
                             inputs=[io.String.Input("text", force_input=True), io.Int.Input("n", default=1, min=0, max=5)],
                             outputs=[io.String.Output("text")])

        @classmethod
        def validate_inputs(cls, **kwargs):
            return kwargs.get("n", 0) < 100 or "n must stay below 100"

        @classmethod
        def execute(cls, text, n):
            return io.NodeOutput(f"{text}:{n}")

    class ExampleAsync(io.ComfyNode):
        """An async execute (FUNCTION is EXECUTE_NORMALIZED_ASYNC)."""

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="ExampleAsync", category="examples",
                             inputs=[io.String.Input("text", force_input=True)], outputs=[io.String.Output("text")])

        @classmethod
        async def execute(cls, text):
            return io.NodeOutput(text.upper())

    class ExampleWritesClass(io.ComfyNode):
        """Tries to cache on its class during execute: ComfyUI runs execute on a locked clone, so this fails."""

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="ExampleWritesClass", category="examples",
                             inputs=[io.String.Input("text", force_input=True)], outputs=[io.String.Output("text")])

        @classmethod
        def execute(cls, text):
            cls.last_text = text
            return io.NodeOutput(text)

    class ExampleValidationView(io.ComfyNode):
        """What validate_inputs sees of the hidden values (PROMPT is {} before the run), and a long combo."""

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="ExampleValidationView", category="examples",
                             inputs=[io.String.Input("label", default=""),
                                     io.Combo.Input("pick", options=[f"o{i}" for i in range(25)], default="o0")],
                             outputs=[io.String.Output("text")], hidden=[io.Hidden.prompt, io.Hidden.unique_id])

        @classmethod
        def validate_inputs(cls, label):
            if cls.hidden.prompt == {} and cls.hidden.unique_id is not None:
                return True
            return f"validation saw prompt {cls.hidden.prompt!r} and id {cls.hidden.unique_id!r}"

        @classmethod
        def execute(cls, label, pick):
            return io.NodeOutput(f"{label} {pick} {sorted(cls.hidden.prompt)} {cls.hidden.unique_id}")

    class ExampleV1:
        """A V1 node with a custom hidden input that a prompt may carry, and VALIDATE_INPUTS taking it."""

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"text": ("STRING", {"forceInput": True}), "n": ("INT", {"default": 1, "min": 0, "max": 5})},
                    "hidden": {"size": "EXAMPLE_SIZE", "unique_id": "UNIQUE_ID"}}

        RETURN_TYPES = ("STRING",)
        FUNCTION = "run"
        CATEGORY = "examples"

        @classmethod
        def VALIDATE_INPUTS(cls, size=None, unique_id=None):
            return size is None or f"size {size} refused on {unique_id}"

        def run(self, text, n, size=None, unique_id=None):
            return (f"{text}:{n}:{size}:{unique_id}",)

    classes = [ExampleWidgets, ExampleSockets, ExampleText, ExampleHidden, ExampleShow, ExampleShowDict, ExampleSize,
               ExampleKwargsCheck, ExampleAsync, ExampleWritesClass, ExampleValidationView]
    mappings = {cls.GET_SCHEMA().node_id: cls for cls in classes}
    mappings["ExampleV1"] = ExampleV1
    return mappings


V3_INFO_NODES = ("ExampleWidgets", "ExampleSockets", "ExampleText", "ExampleHidden", "ExampleShow", "ExampleShowDict",
                 "ExampleSize", "ExampleKwargsCheck", "ExampleAsync", "ExampleWritesClass", "ExampleValidationView")


def _text(value: str) -> dict:
    return {"class_type": "ExampleText", "inputs": {"text": value}}


# Prompts run under the stand-in's harness and under a real ComfyUI's validate_prompt + PromptExecutor.
PROMPTS = {
    "hidden and ui": {"1": _text("hello"), "2": {"class_type": "ExampleHidden", "inputs": {"label": "x"}},
                      "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}},
                      "4": {"class_type": "ExampleShowDict", "inputs": {"text": ["1", 0], "times": 2}}},
    "size ok": {"1": _text("t"), "2": {"class_type": "ExampleSize", "inputs": {"text": ["1", 0], "width": 64, "height": 32, "frames": 9}},
                "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}}},
    "size too large": {"1": _text("t"), "2": {"class_type": "ExampleSize", "inputs": {"text": ["1", 0], "width": 128, "height": 64, "frames": 9}},
                       "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}}},
    "size out of range": {"1": _text("t"), "2": {"class_type": "ExampleSize", "inputs": {"text": ["1", 0], "width": 200, "height": 16, "frames": 99}},
                          "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}}},
    "size given as text": {"2": {"class_type": "ExampleSize", "inputs": {"text": "typed", "width": 16, "height": 16, "frames": 9}},
                           "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}}},
    "missing, unconvertible, raising": {
        "1": {"class_type": "ExampleHidden", "inputs": {}},
        "2": {"class_type": "ExampleSize", "inputs": {"text": ["1", 0], "width": "wide", "height": 16}},
        "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}},
        "4": {"class_type": "ExampleShowDict", "inputs": {"text": ["1", 0], "times": 7}}},
    "type mismatch": {"1": {"class_type": "ExampleWidgets", "inputs": {}},
                      "3": {"class_type": "ExampleShow", "inputs": {"text": ["1", 0]}}},
    "kwargs check": {"1": _text("k"), "2": {"class_type": "ExampleKwargsCheck", "inputs": {"text": ["1", 0], "n": 50}},
                     "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}}},
    "kwargs check fails": {"1": _text("k"), "2": {"class_type": "ExampleKwargsCheck", "inputs": {"text": ["1", 0], "n": 500}},
                           "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}}},
    "async": {"1": _text("quiet"), "2": {"class_type": "ExampleAsync", "inputs": {"text": ["1", 0]}},
              "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}}},
    "class write refused": {"1": _text("w"), "2": {"class_type": "ExampleWritesClass", "inputs": {"text": ["1", 0]}},
                            "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}}},
    "v1 custom hidden": {"1": _text("v"), "2": {"class_type": "ExampleV1", "inputs": {"text": ["1", 0], "n": 2}},
                         "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}}},
    "v1 custom hidden refused": {"1": _text("v"), "2": {"class_type": "ExampleV1", "inputs": {"text": ["1", 0], "n": 9, "size": "10x10"}},
                                 "3": {"class_type": "ExampleShow", "inputs": {"text": ["2", 0]}}},
    "wrong combo, unconvertible int": {"1": _text("c"), "2": {"class_type": "ExampleShowDict", "inputs": {"text": ["1", 0], "times": "x", "case": "title"}}},
    "validation view": {"1": {"class_type": "ExampleValidationView", "inputs": {"label": "v", "pick": "o3"}},
                        "2": {"class_type": "ExampleShow", "inputs": {"text": ["1", 0]}}},
    "pick not in a long list": {"1": {"class_type": "ExampleValidationView", "inputs": {"label": "v", "pick": "zzz"}},
                                "2": {"class_type": "ExampleShow", "inputs": {"text": ["1", 0]}}},
    "combo upper": {"1": _text("c"), "2": {"class_type": "ExampleShowDict", "inputs": {"text": ["1", 0], "times": "3", "case": "upper"}}},
}


def canon(value):
    """`value` as JSON-able data that keeps what == compares: tuples and enum members tagged, dict keys as strings."""
    if isinstance(value, enum.Enum):
        return {"<enum>": type(value).__name__, "value": canon(value.value)}
    if isinstance(value, tuple):
        return {"<tuple>": [canon(v) for v in value]}
    if isinstance(value, list):
        return [canon(v) for v in value]
    if isinstance(value, dict):
        return {"<dict>": [[canon(k), canon(v)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"<object>": type(value).__name__}


def describe(cls) -> dict:
    """What ComfyUI derives from a node class: INPUT_TYPES(), the V1 class properties and GET_NODE_INFO_V1()."""
    found = {"INPUT_TYPES": canon(cls.INPUT_TYPES())}
    for name in V1_PROPERTIES:
        found[name] = canon(getattr(cls, name, "<absent>"))
    if hasattr(cls, "GET_NODE_INFO_V1"):
        found["GET_NODE_INFO_V1"] = canon(cls.GET_NODE_INFO_V1())
    return found


def _signature(target) -> list:
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return ["<no signature>"]
    return [[p.name, p.kind.name, repr(p.default) if p.default is not inspect.Parameter.empty else "<required>"]
            for p in signature.parameters.values()]


def api_surface(io, ui, extension) -> dict:
    """Signatures and members of the io subset the stand-in provides, for comparison with a real ComfyUI."""
    surface = {}
    for name in IO_TYPES:
        comfy_type = getattr(io, name)
        surface[f"{name}.io_type"] = comfy_type.io_type
        surface[f"{name}.Input"] = _signature(comfy_type.Input.__init__)
        surface[f"{name}.Output"] = _signature(comfy_type.Output.__init__)
    for name in ("Input", "WidgetInput", "Output", "NodeOutput", "HiddenHolder", "RemoteOptions", "Schema"):
        surface[name] = _signature(getattr(io, name).__init__)
    surface["Custom"] = _signature(io.Custom)
    surface["Custom.io_type"] = io.Custom("X_TYPE").io_type
    for name in ("Hidden", "NumberDisplay", "UploadType", "FolderType"):
        surface[name] = [[member.name, member.value] for member in getattr(io, name)]
    for name in ("define_schema", "execute", "validate_inputs", "fingerprint_inputs", "check_lazy_status"):
        surface[f"ComfyNode.{name}"] = _signature(getattr(io.ComfyNode, name))
    for name in ("NodeOutput.from_dict",):
        surface[name] = _signature(io.NodeOutput.from_dict)
    surface["NodeInfoV1"] = list(io.NodeInfoV1.__dataclass_fields__)
    for name in ("PreviewText", "PreviewVideo", "SavedResult"):
        surface[f"ui.{name}"] = _signature(getattr(ui, name).__init__)
    surface["ComfyExtension"] = sorted(n for n in ("on_load", "get_node_list")
                                       if inspect.iscoroutinefunction(getattr(extension, n)))
    return surface


def _reasons(node_errors: dict) -> dict:
    """{node_id: sorted [type, message, details]} of validation errors (ComfyUI files them in set order)."""
    return {node: sorted([r["type"], r["message"], r["details"]] for r in reasons) for node, reasons in node_errors.items()}


def outcome_of_validation(node_errors: dict | None, ui: dict | None) -> dict:
    """One comparable outcome of running a prompt: its node errors, or the ui of its output nodes."""
    if node_errors is not None:
        return {"node_errors": _reasons(node_errors)}
    return {"ui": canon({node: ui[node] for node in sorted(ui)})}


def harness_outcome(harness, prompt: dict, mappings: dict) -> dict:
    """The outcome of `prompt` under the stand-in's harness, in outcome_of_validation's terms."""
    try:
        result = harness.execute(json.loads(json.dumps(prompt)), mappings)
    except harness.PromptError as error:
        return outcome_of_validation(error.node_errors, None)
    except harness.NodeFailure as failure:
        return {"failed": [failure.node_id, type(failure.exception).__name__]}
    return outcome_of_validation(None, result.ui)


def real_comfyui_report(comfy_dir: str, base_dir: str, pack_dir: str | None) -> dict:
    """Run inside a real ComfyUI's Python (cwd COMFYUI_DIR): what it derives from the example nodes (and the pack's
    V3 nodes when `pack_dir` is given), the io signatures, and the outcome of each of PROMPTS."""
    import asyncio
    import sys
    import types
    import uuid

    sys.path.insert(0, comfy_dir)
    sys.argv = ["main.py", "--cpu", "--base-directory", base_dir]
    import comfy.options

    comfy.options.enable_args_parsing()
    from comfy_api.v0_0_2 import ComfyExtension, io, ui

    report = {"surface": api_surface(io, ui, ComfyExtension)}
    examples = build(io, ui)
    report["examples"] = {node_id: describe(cls) for node_id, cls in examples.items()}

    import execution
    import nodes

    if pack_dir is not None:
        import logging

        messages = []
        handler = logging.Handler(logging.WARNING)
        handler.emit = lambda record: messages.append(record.getMessage())
        logging.getLogger().addHandler(handler)
        before = set(nodes.NODE_CLASS_MAPPINGS)
        loaded = asyncio.run(nodes.load_custom_node(pack_dir))
        logging.getLogger().removeHandler(handler)
        added = {k: v for k, v in nodes.NODE_CLASS_MAPPINGS.items() if k not in before}
        report["pack"] = {"loaded": loaded, "log": messages[-5:],
                          "display_names": {k: nodes.NODE_DISPLAY_NAME_MAPPINGS.get(k) for k in added},
                          "nodes": {k: describe(v) for k, v in added.items() if issubclass(v, io.ComfyNode)},
                          "v1_nodes": sorted(k for k, v in added.items() if not issubclass(v, io.ComfyNode))}

    nodes.NODE_CLASS_MAPPINGS.update(examples)
    server = types.SimpleNamespace(client_id=None, last_node_id=None, send_sync=lambda *args, **kwargs: None)
    outcomes = {}
    for name, prompt in PROMPTS.items():
        prompt = json.loads(json.dumps(prompt))
        valid, error, good_outputs, node_errors = asyncio.run(execution.validate_prompt(str(uuid.uuid4()), prompt, None))
        if not valid:
            outcomes[name] = outcome_of_validation({k: v["errors"] for k, v in node_errors.items()}, None)
            continue
        executor = execution.PromptExecutor(server, cache_type=execution.CacheType.CLASSIC, cache_args={"lru": 0, "ram": 0})
        executor.execute(prompt, str(uuid.uuid4()), {}, good_outputs)
        failure = [m for event, m in executor.status_messages if event == "execution_error"]
        if failure:
            outcomes[name] = {"failed": [failure[0]["node_id"], failure[0]["exception_type"].split(".")[-1]]}
        else:
            outcomes[name] = outcome_of_validation(None, executor.history_result["outputs"])
    report["prompts"] = outcomes
    return report


if __name__ == "__main__":  # python v3_examples.py COMFYUI_DIR BASE_DIR [PACK_DIR] -> the report as JSON on stdout
    import sys

    arguments = sys.argv[1:]
    result = real_comfyui_report(arguments[0], arguments[1], arguments[2] if len(arguments) > 2 else None)
    print("REPORT " + json.dumps(result))
