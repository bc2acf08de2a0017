"""Load an API-format workflow and patch it for one job: face image, prompts, seed, overrides, output name."""

from __future__ import annotations

import copy
import json
import os
import re

from .. import node_ids
from ..errors import ConsisIDError
from .lora_override import apply_lora_override
from .teacache_override import apply_teacache_override

LOAD_IMAGE = "LoadImage"  # ComfyUI's core node
TEXT_ENCODE = node_ids.TEXT_ENCODE
SAMPLER = node_ids.SAMPLER
DEFAULT_FACE_NAME = "consisid_face.png"
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif", ".webp", ".apng")


class WorkflowError(ConsisIDError, ValueError):
    """The workflow file cannot be used, or a job's override does not fit it."""


def load_workflow(path: str) -> dict:
    """Read an API-format workflow (File > Export (API)); UI-format files are refused with a hint."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise WorkflowError(f"cannot read the workflow {path}: {exc}") from exc
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        raise WorkflowError(f"{path} is a UI-format workflow; use the API format (File > Export (API)), e.g. workflows/api/")
    if not isinstance(data, dict) or not data or not all(isinstance(n, dict) and "class_type" in n for n in data.values()):
        raise WorkflowError(f"{path} is not an API-format workflow (a dict of nodes with class_type)")
    return data


def nodes_of(workflow: dict, class_type: str) -> list[str]:
    """Node ids of one class, in id order."""
    return sorted((i for i, n in workflow.items() if n.get("class_type") == class_type), key=_id_order)


def _id_order(node_id: str):
    return (0, int(node_id), "") if str(node_id).isdigit() else (1, 0, str(node_id))


def face_node(workflow: dict) -> str:
    """The LoadImage node that takes the face: the one named consisid_face.png, or the only LoadImage."""
    loaders = nodes_of(workflow, LOAD_IMAGE)
    named = [i for i in loaders if workflow[i].get("inputs", {}).get("image") == DEFAULT_FACE_NAME]
    if named:
        return named[0]
    if len(loaders) == 1:
        return loaders[0]
    if not loaders:
        raise WorkflowError("the workflow has no LoadImage node for the face photo")
    raise WorkflowError(f"the workflow has {len(loaders)} LoadImage nodes and none uses '{DEFAULT_FACE_NAME}'")


def coerce(text: str, current):
    """Turn an override's text into the type of the value it replaces (int, float, bool or string)."""
    if isinstance(current, list):
        raise WorkflowError("that input is wired to another node, it has no value to override")
    lowered = text.strip().lower()
    if isinstance(current, bool):
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise WorkflowError(f"'{text}' is not a boolean (true/false)")
    if isinstance(current, int):
        try:
            number = float(text)
        except ValueError:
            raise WorkflowError(f"'{text}' is not a whole number") from None
        if not number.is_integer():
            raise WorkflowError(f"'{text}' is not a whole number")
        return int(number)
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise WorkflowError(f"'{text}' is not a number") from None
    if current is None:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _describe(workflow: dict, node_id: str) -> str:
    return f"node {node_id} ({workflow[node_id].get('class_type')})"


def resolve_override(workflow: dict, key: str) -> list[tuple[str, str]]:
    """(node id, input name) pairs an override key addresses: `input`, `<node id>.<input>` or `<ClassType>.<input>`."""
    if "." in key:
        target, _, name = key.partition(".")
        if target in workflow:
            return [(target, name)]
        ids = nodes_of(workflow, target)
        if not ids:
            raise WorkflowError(f"override '{key}': no node with id or class '{target}' in the workflow")
        missing = [i for i in ids if name not in workflow[i].get("inputs", {})]
        if missing:
            inputs = ", ".join(sorted(workflow[missing[0]].get("inputs", {})))
            raise WorkflowError(f"override '{key}': {_describe(workflow, missing[0])} has no input '{name}' (inputs: {inputs})")
        return [(i, name) for i in ids]
    order = node_ids.OVERRIDE_SEARCH_ORDER  # read at call time: other modules may extend it
    classes = list(order) + sorted({n["class_type"] for n in workflow.values()} - set(order))
    for class_type in classes:
        ids = [i for i in nodes_of(workflow, class_type) if key in workflow[i].get("inputs", {})]
        if ids:
            return [(i, key) for i in ids]
    raise WorkflowError(
        f"override '{key}': no node of the workflow has an input named '{key}' "
        "(use <node id>.<input> or <ClassType>.<input>)"
    )


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))


def text_source(workflow: dict, node_id: str, name: str) -> tuple[str, str]:
    """(node id, input name) that holds the text of `name` on a node: the input itself when typed, else the `value`
    of the string node its link comes from (followed through chains of string nodes), so every consumer of that
    string sees one text."""
    seen = [node_id]
    current, input_name = node_id, name
    while _is_link(workflow[current].get("inputs", {}).get(input_name)):
        source = str(workflow[current]["inputs"][input_name][0])
        what = f"the {name} of {_describe(workflow, node_id)}"
        if source not in workflow:
            raise WorkflowError(f"{what} is linked to node {source}, which is not in the workflow")
        if source in seen:
            raise WorkflowError(f"{what} is linked in a circle ({' -> '.join(seen + [source])})")
        typed = [k for k, v in workflow[source].get("inputs", {}).items() if isinstance(v, str)]
        value = workflow[source].get("inputs", {}).get("value")
        if "value" not in workflow[source].get("inputs", {}) or typed not in ([], ["value"]) or \
                not (isinstance(value, str) or _is_link(value)):
            raise WorkflowError(
                f"{what} comes from {_describe(workflow, source)}, which has no single text `value` to set "
                "(link it from a String or String (Multiline) node, or type it into the node)")
        seen.append(source)
        current, input_name = source, "value"
    return current, input_name


def set_text(workflow: dict, node_id: str, name: str, text: str) -> None:
    """Put `text` where input `name` of a node takes its text from (see text_source), in place."""
    source, input_name = text_source(workflow, node_id, name)
    workflow[source].setdefault("inputs", {})[input_name] = text


def _typed_prompt_copies(workflow: dict, encoders: list[str]) -> list[str]:
    """Identity Score nodes whose prompt is typed and equal to a Text Encode prompt (older workflows copied it by
    hand): the job's prompt goes there too, so CLIPScore scores the prompt the video was made from."""
    prompts = set()
    for node_id in encoders:
        source, name = text_source(workflow, node_id, "prompt")
        if isinstance(workflow[source]["inputs"].get(name), str):
            prompts.add(workflow[source]["inputs"][name])
    return [node_id for node_id in nodes_of(workflow, node_ids.IDENTITY_SCORE)
            if isinstance(workflow[node_id].get("inputs", {}).get("prompt"), str)
            and workflow[node_id]["inputs"]["prompt"] in prompts - {""}]


def safe_name(name: str) -> str:
    """A file-name-safe version of a job name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "job"


def apply_job(
    workflow: dict,
    face_name: str,
    prompt: str,
    negative_prompt: str | None = None,
    seed: int | None = None,
    overrides: dict[str, str] | None = None,
    output_prefix: str | None = None,
) -> dict:
    """A patched copy of the workflow for one job (the original is left untouched)."""
    patched = copy.deepcopy(workflow)
    patched[face_node(patched)]["inputs"]["image"] = face_name
    encoders = nodes_of(patched, TEXT_ENCODE)
    if not encoders:
        raise WorkflowError(f"the workflow has no {TEXT_ENCODE} node to put the prompt in")
    typed_copies = _typed_prompt_copies(patched, encoders)
    for node_id in encoders:
        set_text(patched, node_id, "prompt", prompt)
        if negative_prompt is not None:
            set_text(patched, node_id, "negative_prompt", negative_prompt)
    for node_id in typed_copies:  # a saved workflow's Identity Score holding a typed copy of the prompt
        patched[node_id]["inputs"]["prompt"] = prompt
    if seed is not None:
        samplers = nodes_of(patched, SAMPLER)
        if not samplers:
            raise WorkflowError(f"the workflow has no {SAMPLER} node to set the seed on")
        for node_id in samplers:
            patched[node_id]["inputs"]["seed"] = int(seed)
    overrides = dict(overrides or {})
    apply_teacache_override(patched, overrides)  # teacache / teacache_start / teacache_end (may add a node)
    apply_lora_override(patched, overrides)  # lora=NAME.safetensors[:STRENGTH][+...] (adds ConsisID LoRA nodes)
    for key, text in overrides.items():
        for node_id, name in resolve_override(patched, key):
            inputs = patched[node_id].setdefault("inputs", {})
            try:
                inputs[name] = coerce(text, inputs.get(name))
            except WorkflowError as exc:
                raise WorkflowError(f"override {key}={text} on {_describe(patched, node_id)}: {exc}") from None
    if output_prefix:
        for node in patched.values():
            inputs = node.get("inputs", {})
            if isinstance(inputs.get("filename_prefix"), str):
                inputs["filename_prefix"] = output_prefix
    return patched


def output_files(history_entry: dict) -> list[dict]:
    """Files a finished prompt produced, videos first: VHS `gifs`, core `images`/`videos` (temp previews last)."""
    found = []
    for node_id, output in sorted((history_entry.get("outputs") or {}).items(), key=lambda kv: _id_order(kv[0])):
        if not isinstance(output, dict):
            continue
        animated = output.get("animated")
        for key in ("gifs", "videos", "images"):
            items = output.get(key) or []
            for index, item in enumerate(items):
                if not isinstance(item, dict) or "filename" not in item:
                    continue
                is_video = key in ("gifs", "videos") or item["filename"].lower().endswith(VIDEO_EXTENSIONS)
                if isinstance(animated, list) and index < len(animated) and animated[index]:
                    is_video = True
                found.append({
                    "node": node_id,
                    "key": key,
                    "filename": item["filename"],
                    "subfolder": item.get("subfolder", ""),
                    "type": item.get("type", "output"),
                    "video": is_video,
                })
    found.sort(key=lambda f: (not f["video"], f["type"] != "output"))
    return found


def error_message(history_entry: dict) -> str | None:
    """The error ComfyUI recorded for a failed prompt, as one line naming the node."""
    status = history_entry.get("status") or {}
    if status.get("status_str") != "error":
        return None
    for event, data in status.get("messages") or []:
        if event == "execution_error":
            return (
                f"{data.get('node_type', '?')} (node {data.get('node_id', '?')}): "
                f"{data.get('exception_message', '').strip() or data.get('exception_type', 'error')}"
            )
        if event == "execution_interrupted":
            return f"interrupted at {data.get('node_type', '?')} (node {data.get('node_id', '?')})"
    return "ComfyUI reported an error without details"


def face_upload_name(path: str, digest: str) -> str:
    """The input-folder name a face is uploaded under: content hash keeps distinct faces apart."""
    ext = os.path.splitext(path)[1].lower() or ".png"
    return f"consisid_{digest[:16]}{ext}"
