"""Run API-format workflows through node classes the way ComfyUI 0.8's executor does, for V1 and V3 nodes.

Mirrors `server.post_prompt` (the on_prompt handlers run first), `execution.validate_prompt` / `validate_inputs`
(required inputs, link types, INT/FLOAT/STRING/BOOLEAN conversion, min/max and combo checks skipped for inputs the
node's validate function takes, linked inputs given to it as None, one error per argument it was given, exceptions
filed as validation errors), `execution.get_input_data` (only declared inputs; V1 hidden inputs from INPUT_TYPES,
values a prompt gives for V1 hidden names kept; V3 hidden values only for the `Hidden` members the schema names)
and `PromptExecutor.execute` (outputs' ancestors in dependency order, interrupt check before each node; V1: FUNCTION
on an instance; V3: a per-run clone of the class with `cls.hidden` set, locked against attribute writes, calling
EXECUTE_NORMALIZED; results as tuples, `{"ui", "result"}` dicts or NodeOutput; ui merged per key into lists).

Not modelled: caching (IS_CHANGED / fingerprint_inputs, NOT_IDEMPOTENT), lazy inputs (every linked input is
computed first), list mapping (OUTPUT_IS_LIST feeding a non-list node), node expansion and ExecutionBlocker,
DYNPROMPT (None), extra_pnginfo and the auth hidden values (None). Stricter than ComfyUI: a node returning a
different number of values than RETURN_TYPES fails (ComfyUI would hand None downstream), and the prompt fails
when any output node fails validation (ComfyUI runs the outputs that passed).
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from dataclasses import dataclass, field
from typing import Any

import comfy_stub

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
_CONVERTERS = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


@dataclass
class PromptError(Exception):
    """Validation failed: `error` is the prompt-level error, `node_errors` {node_id: [reason dicts]} as ComfyUI."""

    error: dict
    node_errors: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{self.error['message']}: {self.error.get('details', '')}"]
        for node_id, reasons in self.node_errors.items():
            lines += [f"  node {node_id}: {r['message']}: {r['details']}" for r in reasons]
        return "\n".join(lines)

    def messages(self) -> str:
        return str(self)


@dataclass
class NodeFailure(Exception):
    """A node raised while executing (ComfyUI's `execution_error` event)."""

    node_id: str
    class_type: str
    exception: BaseException

    def __str__(self) -> str:
        return f"node {self.node_id} ({self.class_type}) failed: {type(self.exception).__name__}: {self.exception}"


def is_link(value) -> bool:
    """A [node_id, output_index] link, as ComfyUI's is_link tells it from a widget value."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) and isinstance(value[0], str)


def is_v3(cls) -> bool:
    """True for a V3 node class (built on the stand-in's `io.ComfyNode`)."""
    return isinstance(cls, type) and issubclass(cls, comfy_stub.api_module("comfy_api.internal")._ComfyNodeInternal)


def class_inputs(cls) -> tuple[dict, dict | None]:
    """(the inputs execution sees, the hidden dict): for V3 the hidden part is taken out, as get_finalized_class_inputs."""
    spec = cls.INPUT_TYPES()
    if is_v3(cls):
        spec = dict(spec)
        hidden = spec.pop("hidden", None)
        return {"required": spec.get("required", {}), "optional": spec.get("optional", {})}, hidden
    return spec, spec.get("hidden")


def input_info(cls, name: str, valid: dict | None = None) -> tuple[Any, str | None, dict]:
    """(type, "required"/"optional"/"hidden" or None, options) of input `name`, like comfy_execution's get_input_info."""
    spec = valid if valid is not None else cls.INPUT_TYPES()
    for category in ("required", "optional", "hidden"):
        if name in spec.get(category, {}):
            entry = spec[category][name]
            if category == "hidden":
                return entry, category, {}
            return entry[0], category, (entry[1] if len(entry) > 1 else {})
    return None, None, {}


def _validate_function(cls):
    """The node's input check: V3 validate_inputs only when the class overrides it, V1 VALIDATE_INPUTS."""
    if is_v3(cls):
        internal = comfy_stub.api_module("comfy_api.internal")
        return "validate_inputs", internal.first_real_override(cls, "validate_inputs")
    return "VALIDATE_INPUTS", getattr(cls, "VALIDATE_INPUTS", None)


def types_match(received, expected) -> bool:
    """ComfyUI's validate_node_input (non-strict): equal, '*' on either side, a list into COMBO, or a shared type."""
    if not received != expected:
        return True
    if "*" in (received, expected) or "COMFY_MATCHTYPE_V3" in (received, expected):
        return True
    if isinstance(received, list) and expected == "COMBO":
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    received_set = {t.strip() for t in received.split(",")}
    expected_set = {t.strip() for t in expected.split(",")}
    return "*" in received_set or "*" in expected_set or bool(received_set & expected_set)


_types_match = types_match  # the name earlier callers used


def gather_inputs(prompt: dict, node_id: str, cls, results: dict | None) -> tuple[dict, dict]:
    """(inputs for the node's function, V3 hidden values), as ComfyUI's get_input_data.

    `results` None means validation time: every linked input is None and PROMPT is {} (no dynprompt yet)."""
    valid, hidden = class_inputs(cls)
    inputs = prompt[node_id].get("inputs", {})
    values: dict = {}
    for name, value in inputs.items():
        _type, category, options = input_info(cls, name, valid)
        if is_link(value) and not options.get("rawLink", False):
            outputs = results.get(value[0]) if results is not None else None
            values[name] = outputs[value[1]] if outputs is not None and value[1] < len(outputs) else None
        elif category is not None:
            values[name] = value
    whole_prompt = prompt if results is not None else {}
    known = {"PROMPT": whole_prompt, "DYNPROMPT": None, "EXTRA_PNGINFO": None, "UNIQUE_ID": node_id,
             "AUTH_TOKEN_COMFY_ORG": None, "API_KEY_COMFY_ORG": None}
    hidden_v3: dict = {}
    if is_v3(cls):
        hidden_enum = comfy_stub.api_module("comfy_api.latest._io").Hidden
        for member in hidden_enum:
            if hidden is not None and member.name in hidden:
                hidden_v3[member] = known[member.value]
    else:
        for name, kind in (hidden or {}).items():
            if kind in known:
                values[name] = known[kind]
    return values, hidden_v3


def _listed(cls, values: dict) -> dict:
    """INPUT_IS_LIST nodes get every input as a list (one element here: list mapping is not modelled)."""
    return {k: [v] for k, v in values.items()} if getattr(cls, "INPUT_IS_LIST", False) else values


def call_node(cls, function: str, values: dict, hidden_v3: dict, instance=None):
    """Call `function` of a node with `values` as ComfyUI does: V3 on a locked per-run class clone, V1 on `instance`
    (or the class); async functions are run to completion."""
    if is_v3(cls):
        internal = comfy_stub.api_module("comfy_api.internal")
        cls.VALIDATE_CLASS()
        clone = cls.PREPARE_CLASS_CLONE({"hidden_inputs": hidden_v3})
        target = internal.make_locked_method_func(cls, function, clone)
    else:
        target = getattr(instance if instance is not None else cls, function)
    returned = target(**_listed(cls, values))
    if inspect.isawaitable(returned):
        returned = asyncio.run(_await(returned))
    return returned


async def _await(awaitable):
    return await awaitable


def validate_prompt(prompt: dict, mappings: dict) -> list[str]:
    """Raise PromptError like ComfyUI's validate_prompt; return the output node ids."""
    outputs = []
    for node_id, node in prompt.items():
        if "class_type" not in node:
            raise PromptError({"type": "invalid_prompt", "message": "Cannot execute because a node is missing the class_type property.", "details": f"Node ID '#{node_id}'"})
        cls = mappings.get(node["class_type"])
        if cls is None:
            raise PromptError({"type": "invalid_prompt", "message": f"Cannot execute because node {node['class_type']} does not exist.", "details": f"Node ID '#{node_id}'"})
        if getattr(cls, "OUTPUT_NODE", False) is True:
            outputs.append(node_id)
    if not outputs:
        raise PromptError({"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": ""})
    validated: dict[str, tuple[bool, list]] = {}
    for output in outputs:
        try:
            _validate_node(prompt, mappings, output, validated)
        except Exception as exc:
            validated[output] = (False, [_error("exception_during_validation", "Exception when validating node", str(exc),
                                                exception_type=type(exc).__name__, traceback=traceback.format_tb(exc.__traceback__))])
    node_errors = {nid: reasons for nid, (ok, reasons) in validated.items() if not ok and reasons}
    if any(not validated[o][0] for o in outputs):
        raise PromptError({"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                           "details": "; ".join(f"{r['message']}: {r['details']}" for rs in node_errors.values() for r in rs)},
                          node_errors)
    return outputs


def _error(kind: str, message: str, details: str, **extra_info) -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info}


def _check_value(name: str, value, input_type, options: dict) -> dict | None:
    """The min/max/combo error for a widget value, or None."""
    if "min" in options and value < options["min"]:
        return _error("value_smaller_than_min", f"Value {value} smaller than min of {options['min']}", name, input_name=name)
    if "max" in options and value > options["max"]:
        return _error("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}", name, input_name=name)
    if isinstance(input_type, list) or input_type == "COMBO":
        choices = options.get("options", []) if input_type == "COMBO" else input_type
        if value not in choices:
            shown = f"(list of length {len(choices)})" if len(choices) > 20 else str(choices)
            return _error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {shown}", input_name=name)
    return None


def _validate_node(prompt: dict, mappings: dict, node_id: str, validated: dict) -> bool:
    if node_id in validated:
        return validated[node_id][0]
    node = prompt[node_id]
    cls = mappings[node["class_type"]]
    inputs = node.get("inputs", {})
    valid_inputs, _hidden = class_inputs(cls)
    function_name, function = _validate_function(cls)
    validate_args, validate_kwargs = [], False
    if function is not None:
        spec = inspect.getfullargspec(function)
        validate_args, validate_kwargs = spec.args, spec.varkw is not None
    errors, valid, received_types = [], True, {}
    for name in list(valid_inputs.get("required", {})) + list(valid_inputs.get("optional", {})):
        input_type, category, extra = input_info(cls, name, valid_inputs)
        if name not in inputs:
            if category == "required":
                errors.append(_error("required_input_missing", "Required input is missing", name, input_name=name))
            continue
        value = inputs[name]
        if isinstance(value, list):
            if len(value) != 2:
                errors.append(_error("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]", name, input_name=name))
                continue
            source = mappings[prompt[value[0]]["class_type"]]
            received = source.RETURN_TYPES[value[1]]
            received_types[name] = received
            if "input_types" not in validate_args and not types_match(received, input_type):
                errors.append(_error("return_type_mismatch", "Return type mismatch between linked nodes",
                                     f"{name}, received_type({received}) mismatch input_type({input_type})", input_name=name))
                continue
            try:
                if not _validate_node(prompt, mappings, value[0], validated):
                    valid = False
            except Exception as exc:
                valid = False
                validated[value[0]] = (False, [_error("exception_during_inner_validation", "Exception when validating inner node",
                                                      str(exc), input_name=name, exception_type=type(exc).__name__)])
            continue
        try:
            if isinstance(value, dict) and "__value__" in value:
                value = inputs[name] = value["__value__"]
            converter = _CONVERTERS.get(input_type) if isinstance(input_type, str) else None
            if converter is not None:
                value = inputs[name] = converter(value)
        except Exception as exc:
            errors.append(_error("invalid_input_type", f"Failed to convert an input value to a {input_type} value",
                                 f"{name}, {value}, {exc}", input_name=name))
            continue
        if name not in validate_args and not validate_kwargs:
            problem = _check_value(name, value, input_type, extra)
            if problem is not None:
                errors.append(problem)
    if validate_args or validate_kwargs:
        values, hidden_v3 = gather_inputs(prompt, node_id, cls, None)
        given = {k: v for k, v in values.items() if k in validate_args or validate_kwargs}
        if "input_types" in validate_args:
            given["input_types"] = received_types
        result = call_node(cls, function_name, given, hidden_v3)
        if result is not True:
            for name in given:  # ComfyUI files the failure once per argument it passed
                details = name if result is False else f"{name} - {result}"
                errors.append(_error("custom_validation_failed", "Custom validation failed for node", details, input_name=name))
    ok = valid and not errors
    validated[node_id] = (ok, errors)
    return ok


def execution_order(prompt: dict, outputs: list[str]) -> list[str]:
    """The outputs' ancestors, each after the nodes it links from (ComfyUI's ExecutionList order is one such)."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(node_id: str) -> None:
        if state.get(node_id) == "done":
            return
        if state.get(node_id) == "visiting":
            raise PromptError({"type": "dependency_cycle", "message": "Dependency cycle detected", "details": node_id})
        state[node_id] = "visiting"
        for value in prompt[node_id].get("inputs", {}).values():
            if is_link(value):
                visit(value[0])
        state[node_id] = "done"
        order.append(node_id)

    for output in sorted(outputs):
        visit(output)
    return order


@dataclass
class RunResult:
    outputs: dict  # node_id -> tuple of output values
    ui: dict  # node_id -> ui dict of output nodes (each key a list, as in ComfyUI's history)
    order: list


def split_returned(returned, cls) -> tuple[tuple | None, dict | None]:
    """(output values or None, ui dict or None) of what a node function returned, as get_output_from_returns."""
    node_output = comfy_stub.api_module("comfy_api.internal")._NodeOutputInternal
    if isinstance(returned, node_output):
        if returned.expand is not None or returned.block_execution is not None:
            raise NotImplementedError("the harness does not model node expansion or ExecutionBlocker")
        ui = returned.ui
        if ui is not None and not isinstance(ui, dict):
            ui = ui.as_dict()
        return returned.result, ui
    if isinstance(returned, dict):
        if "expand" in returned:
            raise NotImplementedError("the harness does not model node expansion")
        return returned.get("result"), returned.get("ui")
    return returned, None


def _check_list_outputs(prompt: dict, mappings: dict, node_id: str, cls) -> None:
    for name, value in prompt[node_id].get("inputs", {}).items():
        if is_link(value):
            source = mappings[prompt[value[0]]["class_type"]]
            listed = list(getattr(source, "OUTPUT_IS_LIST", None) or [])
            if value[1] < len(listed) and listed[value[1]] and not getattr(cls, "INPUT_IS_LIST", False):
                raise NotImplementedError(f"{name}: a list output feeding a non-list node is mapped by ComfyUI; "
                                          "the harness does not model that")


def execute(prompt: dict, mappings: dict, validate: bool = True) -> RunResult:
    """Validate (optional) and run a prompt; raise PromptError or NodeFailure like ComfyUI reports them."""
    import comfy.model_management as mm
    import server

    if validate and server.PromptServer.instance is not None:  # POST /prompt runs the on_prompt handlers first
        prompt = server.PromptServer.instance.trigger_on_prompt({"prompt": prompt})["prompt"]
    outputs = validate_prompt(prompt, mappings) if validate else [
        i for i, n in prompt.items() if getattr(mappings[n["class_type"]], "OUTPUT_NODE", False)]
    order = execution_order(prompt, outputs)
    results: dict[str, tuple] = {}
    ui: dict[str, dict] = {}
    for node_id in order:
        node = prompt[node_id]
        cls = mappings[node["class_type"]]
        _check_list_outputs(prompt, mappings, node_id, cls)
        values, hidden_v3 = gather_inputs(prompt, node_id, cls, results)
        if server.PromptServer.instance is not None:
            server.PromptServer.instance.last_node_id = node_id
        try:
            instance = cls()  # ComfyUI makes one object per node (a V3 class checks itself here)
            mm.throw_exception_if_processing_interrupted()
            returned = call_node(cls, cls.FUNCTION, values, hidden_v3, instance)
            result, node_ui = split_returned(returned, cls)
        except Exception as exc:
            raise NodeFailure(node_id, node["class_type"], exc) from exc
        if node_ui:
            ui[node_id] = {key: list(items) for key, items in node_ui.items()}  # merged per key, as the history has it
        returned = tuple(result) if result is not None else ()
        if len(returned) != len(cls.RETURN_TYPES):
            raise NodeFailure(node_id, node["class_type"], RuntimeError(
                f"returned {len(returned)} values for RETURN_TYPES {cls.RETURN_TYPES}"))
        results[node_id] = returned
    return RunResult(results, ui, order)


def node_mappings(module, module_parent: str = "custom_nodes", name: str | None = None) -> tuple[dict, dict]:
    """(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS) of an imported custom-node package, as ComfyUI 0.8's
    load_custom_node builds them: V1 mappings when the module has them, else its comfy_entrypoint() extension's
    node list (ids and display names from each schema; 0.8 never calls on_load). Sets RELATIVE_PYTHON_MODULE like
    ComfyUI."""
    relative = f"{module_parent}.{name or module.__name__}"
    classes, names = {}, {}
    if getattr(module, "NODE_CLASS_MAPPINGS", None) is not None:
        for node_id, cls in module.NODE_CLASS_MAPPINGS.items():
            classes[node_id] = cls
            cls.RELATIVE_PYTHON_MODULE = relative
        names.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {})
        return classes, names
    entrypoint = getattr(module, "comfy_entrypoint", None)
    if not callable(entrypoint):
        raise ValueError(f"{module.__name__} has neither NODE_CLASS_MAPPINGS nor a callable comfy_entrypoint")

    async def load():
        extension = await entrypoint() if inspect.iscoroutinefunction(entrypoint) else entrypoint()
        if not isinstance(extension, comfy_stub.api_module("comfy_api.latest").ComfyExtension):
            raise TypeError(f"comfy_entrypoint in {module.__name__} did not return a ComfyExtension")
        return await extension.get_node_list()

    for cls in asyncio.run(load()):
        schema = cls.GET_SCHEMA()
        classes[schema.node_id] = cls
        cls.RELATIVE_PYTHON_MODULE = relative
        if schema.display_name is not None:
            names[schema.node_id] = schema.display_name
    return classes, names
