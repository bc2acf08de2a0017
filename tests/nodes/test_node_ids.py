"""Node ids and the defaults code outside nodes/ relies on have one home (consisid_core/node_ids.py)."""

from __future__ import annotations

import re
from pathlib import Path

from consisid_core import node_ids
from support.pack import REPO, pack_module


def test_teacache_node_declares_the_defaults_the_batch_override_uses():
    inputs = pack_module("nodes.speed_nodes").ConsisIDTeaCache.INPUT_TYPES()["required"]
    assert {name: spec[1]["default"] for name, spec in inputs.items()} == node_ids.TEACACHE_DEFAULTS


def test_no_node_id_is_spelled_out_in_consisid_core_outside_node_ids():
    ids = {v for k, v in vars(node_ids).items() if k.isupper() and isinstance(v, str) and v.startswith("ConsisID")}
    offenders = []
    for path in (REPO / "consisid_core").rglob("*.py"):
        if path.name == "node_ids.py":
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(REPO)}: {i}" for i in ids if re.search(rf"[\"']{i}[\"']", text)]
    assert offenders == [], "use consisid_core.node_ids instead of the literal id"
    assert Path(REPO / "consisid_core" / "node_ids.py").is_file()
