"""The `lora` batch override: ConsisID LoRA nodes chained in front of every sampler's model input.

`lora=me.safetensors` or `lora=me.safetensors:0.8+style.safetensors:0.5` (files in the server's
models/consisid_loras/); an empty value leaves the workflow as it is.
"""

from __future__ import annotations

from .. import node_ids
from ..errors import ConsisIDError

LORA_NODE = node_ids.LORA


def parse_lora_override(text: str) -> list[tuple[str, float]]:
    """'a.safetensors:0.8+b.safetensors' -> [('a.safetensors', 0.8), ('b.safetensors', 1.0)]."""
    items = []
    for part in (p.strip() for p in str(text).split("+")):
        if not part:
            continue
        name, sep, tail = part.rpartition(":")
        strength = 1.0
        if sep and name:
            try:
                strength = float(tail)
            except ValueError:
                name = part
        else:
            name = part
        if not name.lower().endswith(".safetensors"):
            raise ConsisIDError(f"override lora={text}: '{name}' is not a .safetensors file name "
                                "(use NAME.safetensors[:STRENGTH], several joined with '+')")
        items.append((name, strength))
    return items


def add_lora_nodes(workflow: dict, text: str) -> list[str]:
    """Insert the LoRA chain in front of each sampler (in place); returns the new node ids."""
    loras = parse_lora_override(text)
    if not loras:
        return []
    samplers = [i for i, n in workflow.items() if n.get("class_type") == node_ids.SAMPLER]
    if not samplers:
        raise ConsisIDError(f"override lora={text}: the workflow has no {node_ids.SAMPLER} node")
    numeric = [int(i) for i in workflow if str(i).isdigit()]
    next_id = max(numeric, default=0) + 1
    added = []
    for sampler in samplers:
        source = workflow[sampler].get("inputs", {}).get("model")
        if not isinstance(source, list):
            raise ConsisIDError(f"override lora={text}: the sampler {sampler} has no model link to put the LoRA on")
        for name, strength in loras:
            node_id = str(next_id)
            next_id += 1
            workflow[node_id] = {"class_type": LORA_NODE, "_meta": {"title": f"ConsisID LoRA ({name})"},
                                 "inputs": {"model": source, "lora_name": name, "strength": strength}}
            source = [node_id, 0]
            added.append(node_id)
        workflow[sampler]["inputs"]["model"] = source
    return added


def apply_lora_override(workflow: dict, overrides: dict[str, str]) -> None:
    """Take the `lora` key out of `overrides` (in place) and add its LoRA nodes to the workflow."""
    if "lora" in overrides:
        add_lora_nodes(workflow, overrides.pop("lora"))
