"""The README's node table and node count match the nodes the pack registers."""

from __future__ import annotations

import re

from support.pack import REPO, pack_module


def test_readme_lists_every_registered_node_and_says_how_many():
    registered = set(pack_module("nodes").NODES_BY_ID)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("\n## Nodes", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| [^|]*\(`(ConsisID\w+)`\)", table, flags=re.MULTILINE))
    assert listed == registered, f"missing: {registered - listed}; not registered: {listed - registered}"
    counts = {int(n) for n in re.findall(r"The (\d+) ConsisID nodes", readme)}
    assert counts == {len(registered)}, f"the README says {counts} nodes; {len(registered)} are registered"
