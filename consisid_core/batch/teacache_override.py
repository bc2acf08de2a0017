"""The `teacache`, `teacache_start` and `teacache_end` batch overrides, and the computed/skipped record.

`teacache=0.15` sets the threshold of the workflow's ConsisID TeaCache node, or adds one wired to every
sampler's `cache` input; `teacache_start=5` / `teacache_end=40` set its window. The Sampler reports the
steps it computed and skipped in its ComfyUI history entry (`teacache`), which the batch records per job.
"""

from __future__ import annotations

from .. import node_ids
from ..errors import ConsisIDError

TEACACHE_NODE = node_ids.TEACACHE
KEYS = {"teacache": "threshold", "teacache_start": "start_step", "teacache_end": "end_step"}


def _value(key: str, text: str) -> float | int:
    try:
        value = float(text) if key == "teacache" else int(float(text))
    except ValueError:
        raise ConsisIDError(f"override {key}={text}: not a number (e.g. teacache=0.15, teacache_start=5)") from None
    if value < 0:
        raise ConsisIDError(f"override {key}={text}: must be 0 or more")
    return value


def apply_teacache_override(workflow: dict, overrides: dict[str, str]) -> None:
    """Take the teacache keys out of `overrides` (in place) and put them on a TeaCache node of the workflow."""
    values = {KEYS[k]: _value(k, overrides.pop(k)) for k in list(overrides) if k in KEYS}
    if not values:
        return
    samplers = [i for i, n in workflow.items() if n.get("class_type") == node_ids.SAMPLER]
    if not samplers:
        raise ConsisIDError(f"override teacache: the workflow has no {node_ids.SAMPLER} node")
    numeric = [int(i) for i in workflow if str(i).isdigit()]
    next_id = max(numeric, default=0) + 1
    for sampler in samplers:
        inputs = workflow[sampler].setdefault("inputs", {})
        link = inputs.get("cache")
        if isinstance(link, list) and workflow.get(link[0], {}).get("class_type") == TEACACHE_NODE:
            workflow[link[0]]["inputs"].update(values)
            continue
        node_id = str(next_id)
        next_id += 1
        workflow[node_id] = {"class_type": TEACACHE_NODE, "_meta": {"title": "ConsisID TeaCache (batch)"},
                             "inputs": {**node_ids.TEACACHE_DEFAULTS, "threshold": 0.0, **values}}
        inputs["cache"] = [node_id, 0]


def teacache_stats(history_entry: dict) -> dict | None:
    """{"computed", "skipped", "skipped_steps"} of the (first) sampler that ran with a cache, or None."""
    for output in (history_entry.get("outputs") or {}).values():
        stats = output.get("teacache") if isinstance(output, dict) else None
        if isinstance(stats, list) and stats and isinstance(stats[0], dict):
            return stats[0]
    return None
