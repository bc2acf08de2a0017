"""One validation message for a wrong sampler size, through ComfyUI's on_prompt hook.

ComfyUI (0.8, execution.py validate_inputs) files a failed validate_inputs once per argument the function is
given, so a check of width, height and num_frames together would be reported three times (once per widget, even a
correct one); and the check cannot read the other widgets another way (at validation a V3 node's hidden prompt is
empty). This handler looks at the three values of every ConsisID Sampler before validation and, only when they are
wrong, adds them as the sampler's input `size` (an optional V3 input of type CONSISID_SIZE that no node outputs
and the canvas hides: V3 nodes receive no custom hidden inputs); the sampler's validate_inputs takes that one
input, so ComfyUI reports one error naming exactly the wrong values. A prompt whose sizes are fine (or linked, so
unknown until run time) is passed on untouched, and a prompt that gets `size` never runs.
"""

from __future__ import annotations

from consisid_core import node_ids

from . import sizes

SIZE_INPUT = "size"  # the input of ConsisIDSampler that carries a wrong size to its validate_inputs
SIZE_FIELDS = ("width", "height", "num_frames")
CHECKED_NODES = (node_ids.SAMPLER,)
_MARK = "_consisid_size_check"  # set on the PromptServer once the handler is installed (one pack copy is enough)


def _literal_int(value) -> int | None:
    if isinstance(value, bool) or isinstance(value, list):  # a link: known only at run time
        return None
    try:
        return int(value)
    except (TypeError, ValueError):  # ComfyUI's own conversion check reports it
        return None


def mark_wrong_sizes(json_data: dict, class_types: tuple[str, ...] = CHECKED_NODES) -> dict:
    """ComfyUI on_prompt handler: add `size` to each sampler of `class_types` whose size check fails."""
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    if not isinstance(prompt, dict):
        return json_data
    for node in prompt.values():
        if not isinstance(node, dict) or node.get("class_type") not in class_types:
            continue
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            continue
        inputs.pop(SIZE_INPUT, None)  # a stale value from a saved prompt is re-decided here
        values = {k: _literal_int(inputs.get(k)) for k in SIZE_FIELDS}
        if sizes.check(*values.values(), ranges=False) is not None:
            inputs[SIZE_INPUT] = values
    return json_data


def register() -> bool:
    """Install the handler on ComfyUI's PromptServer; False when ComfyUI's server is not running."""
    try:
        import server
    except Exception:  # not inside ComfyUI (CLI, plain tests)
        return False
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None or not hasattr(instance, "add_on_prompt_handler"):
        return False
    if not getattr(instance, _MARK, False):
        instance.add_on_prompt_handler(mark_wrong_sizes)
        setattr(instance, _MARK, True)
    return True
