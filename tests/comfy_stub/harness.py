"""Run API-format workflows through node classes the way ComfyUI 0.8's executor does.

Mirrors `server.post_prompt` (the on_prompt handlers run first), `execution.validate_prompt` /
`validate_inputs` (required inputs, link types, INT/FLOAT/STRING/BOOLEAN conversion, min/max and combo
checks skipped for inputs VALIDATE_INPUTS declares, linked inputs given to VALIDATE_INPUTS as None, one
error per VALIDATE_INPUTS argument) and `PromptExecutor.execute` (outputs' ancestors in dependency order,
interrupt check before each node, FUNCTION called with the inputs, hidden PROMPT/UNIQUE_ID, results
checked against RETURN_TYPES, `{"ui", "result"}` dicts).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


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
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) and isinstance(value[0], str)


def input_info(cls, name: str) -> tuple[Any, str | None, dict]:
    spec = cls.INPUT_TYPES()
    for category in ("required", "optional"):
        if name in spec.get(category, {}):
            entry = spec[category][name]
            return entry[0], category, (entry[1] if len(entry) > 1 else {})
    return None, None, {}


def _validate_function_args(cls) -> tuple[list[str], bool]:
    function = getattr(cls, "VALIDATE_INPUTS", None)
    if function is None:
        return [], False
    spec = inspect.getfullargspec(function)
    return spec.args, spec.varkw is not None


def _types_match(received, expected) -> bool:
    if received == expected or "*" in (received, expected):
        return True
    if isinstance(received, str) and isinstance(expected, str):
        return bool(set(received.split(",")) & set(expected.split(",")))
    return False


def validate_prompt(prompt: dict, mappings: dict) -> list[str]:
    """Raise PromptError like ComfyUI's validate_prompt; return the output node ids."""
    outputs = []
    for node_id, node in prompt.items():
        if "class_type" not in node:
            raise PromptError({"type": "invalid_prompt", "message": "Cannot execute because a node is missing the class_type property.", "details": node_id})
        cls = mappings.get(node["class_type"])
        if cls is None:
            raise PromptError({"type": "invalid_prompt", "message": f"Cannot execute because node {node['class_type']} does not exist.", "details": f"Node ID '#{node_id}'"})
        if getattr(cls, "OUTPUT_NODE", False) is True:
            outputs.append(node_id)
    if not outputs:
        raise PromptError({"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": ""})
    validated: dict[str, tuple[bool, list]] = {}
    for output in outputs:
        _validate_node(prompt, mappings, output, validated)
    node_errors = {nid: reasons for nid, (ok, reasons) in validated.items() if not ok and reasons}
    if any(not validated[o][0] for o in outputs):
        raise PromptError({"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                           "details": "; ".join(f"{r['message']}: {r['details']}" for rs in node_errors.values() for r in rs)},
                          node_errors)
    return outputs


def _error(kind: str, message: str, details: str) -> dict:
    return {"type": kind, "message": message, "details": details}


def _validate_node(prompt: dict, mappings: dict, node_id: str, validated: dict) -> bool:
    if node_id in validated:
        return validated[node_id][0]
    node = prompt[node_id]
    cls = mappings[node["class_type"]]
    inputs = node.get("inputs", {})
    spec = cls.INPUT_TYPES()
    validate_args, validate_kwargs = _validate_function_args(cls)
    errors, valid = [], True
    for name in list(spec.get("required", {})) + list(spec.get("optional", {})):
        input_type, category, extra = input_info(cls, name)
        if name not in inputs:
            if category == "required":
                errors.append(_error("required_input_missing", "Required input is missing", name))
            continue
        value = inputs[name]
        if isinstance(value, list):
            if not is_link(value) or value[0] not in prompt:
                errors.append(_error("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]", name))
                continue
            source = mappings[prompt[value[0]]["class_type"]]
            received = source.RETURN_TYPES[value[1]]
            if "input_types" not in validate_args and not _types_match(received, input_type):
                errors.append(_error("return_type_mismatch", "Return type mismatch between linked nodes",
                                     f"{name}, received_type({received}) mismatch input_type({input_type})"))
                continue
            if not _validate_node(prompt, mappings, value[0], validated):
                valid = False
            continue
        try:
            converter = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}.get(input_type if isinstance(input_type, str) else "")
            if converter is not None:
                value = inputs[name] = converter(value)
        except (TypeError, ValueError) as exc:
            errors.append(_error("invalid_input_type", f"Failed to convert an input value to a {input_type} value", f"{name}, {value}, {exc}"))
            continue
        if name in validate_args or validate_kwargs:
            continue
        if "min" in extra and value < extra["min"]:
            errors.append(_error("value_smaller_than_min", f"Value {value} smaller than min of {extra['min']}", name))
        elif "max" in extra and value > extra["max"]:
            errors.append(_error("value_bigger_than_max", f"Value {value} bigger than max of {extra['max']}", name))
        elif isinstance(input_type, list) and value not in input_type:
            errors.append(_error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {input_type}"))
    if validate_args or validate_kwargs:
        given = {}
        for name in inputs:
            if name in validate_args or validate_kwargs:
                given[name] = None if is_link(inputs[name]) else inputs[name]
        result = cls.VALIDATE_INPUTS(**{k: v for k, v in given.items() if k in validate_args or validate_kwargs})
        if result is not True:
            for name in given:
                details = name if result is False else f"{name} - {result}"
                errors.append(_error("custom_validation_failed", "Custom validation failed for node", details))
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
    ui: dict  # node_id -> ui dict of output nodes
    order: list


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
        kwargs = {}
        for name, value in node.get("inputs", {}).items():
            _type, category, _extra = input_info(cls, name)
            if category is None:
                continue  # ComfyUI passes only inputs the node declares
            kwargs[name] = results[value[0]][value[1]] if is_link(value) else value
        for name, kind in cls.INPUT_TYPES().get("hidden", {}).items():
            kwargs[name] = {"PROMPT": prompt, "UNIQUE_ID": node_id}.get(kind)
        if server.PromptServer.instance is not None:
            server.PromptServer.instance.last_node_id = node_id
        try:
            mm.throw_exception_if_processing_interrupted()
            returned = getattr(cls(), cls.FUNCTION)(**kwargs)
        except Exception as exc:
            raise NodeFailure(node_id, node["class_type"], exc) from exc
        if isinstance(returned, dict):
            if "ui" in returned:
                ui[node_id] = returned["ui"]
            returned = returned.get("result", ())
        returned = tuple(returned) if returned is not None else ()
        if len(returned) != len(cls.RETURN_TYPES):
            raise NodeFailure(node_id, node["class_type"], RuntimeError(
                f"returned {len(returned)} values for RETURN_TYPES {cls.RETURN_TYPES}"))
        results[node_id] = returned
    return RunResult(results, ui, order)
