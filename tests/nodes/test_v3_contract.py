"""The V3 nodes keep the previous release's node definitions (previous_release/v1_node_definitions.json, the last V1
nodes): same ids, display names, inputs in the same canvas order with the same types, defaults, ranges, options and
tooltips, same outputs, so every saved UI and API workflow loads unchanged. Only what V3 itself adds may differ:

- a combo is ("COMBO", {"options": [...], "multiselect": False, ...}) instead of ([...], {...});
- hidden values are 1-tuples, and output nodes also get the hidden prompt / extra_pnginfo;
- the Sampler's `size` (set by nodes/prompt_checks.py for a wrong size) is an optional input of type CONSISID_SIZE,
  not a hidden one: V3 nodes receive no custom hidden inputs.

Checked against the test stand-in here, and against a real ComfyUI's comfy_api when COMFYUI_DIR is set.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.pack import REPO

SNAPSHOT = Path(__file__).parent / "previous_release" / "v1_node_definitions.json"
# Combos whose choices depend on the installation (model folders, LoRA files, attention libraries that import).
INSTALLATION_COMBOS = {("ConsisIDModelLoader", "model"), ("ConsisIDModelLoader", "attention"),
                       ("ConsisIDFaceModelsLoader", "model"), ("ConsisIDEvalModelsLoader", "model"),
                       ("ConsisIDLoRA", "lora_name")}
SIZE_INPUT = ("ConsisIDSampler", "size", "CONSISID_SIZE")
OUTPUT_NODE_HIDDEN = {"prompt": ["PROMPT"], "extra_pnginfo": ["EXTRA_PNGINFO"]}


def describe(cls) -> dict:
    """What ComfyUI serves of a node class (its V1-compatible view, JSON round-tripped): also run in a real ComfyUI."""
    return json.loads(json.dumps({
        "input_types": cls.INPUT_TYPES(),
        "return_types": list(cls.RETURN_TYPES),
        "return_names": list(cls.RETURN_NAMES),
        "output_tooltips": list(cls.OUTPUT_TOOLTIPS),
        "output_node": bool(cls.OUTPUT_NODE),
        "category": cls.CATEGORY,
        "description": cls.DESCRIPTION,
        "display_name": cls.GET_SCHEMA().display_name,
    }))


def expected_v3(node_id: str, v1: dict) -> dict:
    """The previous release's definition as a V3 node must present it (the V3-only forms listed in the docstring)."""
    want = copy.deepcopy(v1)
    spec = want["input_types"]
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            if isinstance(entry[0], list):
                spec[section][name] = ["COMBO", {**entry[1], "options": entry[0], "multiselect": False}]
    hidden = {name: [kind] for name, kind in spec.pop("hidden", {}).items()}
    if node_id == SIZE_INPUT[0]:
        assert hidden.pop(SIZE_INPUT[1]) == [SIZE_INPUT[2]]
        spec.setdefault("optional", {})[SIZE_INPUT[1]] = [SIZE_INPUT[2], {}]  # tooltip: checked on its own
    if want["output_node"]:
        hidden.update(OUTPUT_NODE_HIDDEN)
    if hidden:
        spec["hidden"] = hidden
    return want


def differences(node_id: str, v1: dict, found: dict) -> list[str]:
    """Every way `found` (describe() of today's class) departs from the previous release's definition `v1`."""
    want, got = expected_v3(node_id, v1), copy.deepcopy(found)
    problems = []
    for section in ("required", "optional"):
        w, g = want["input_types"].get(section, {}), got["input_types"].get(section, {})
        if list(w) != list(g):
            problems.append(f"{section} inputs {list(g)} != {list(w)} (names and canvas order)")
        for name in set(w) & set(g):
            if (node_id, name) in INSTALLATION_COMBOS:
                assert g[name][0] == "COMBO", (node_id, name)
                w[name][1]["options"] = g[name][1]["options"] = "<installation>"
            if (node_id, name, g[name][0]) == SIZE_INPUT:
                tooltip = g[name][1].pop("tooltip", "")
                if len(tooltip) < 20 or set(g[name][1]):
                    problems.append(f"{section}.{name}: {g[name]} (a never-wired input with a tooltip only)")
            if w[name] != g[name]:
                problems.append(f"{section}.{name}: {g[name]} != {w[name]}")
    if want["input_types"].get("hidden") != got["input_types"].get("hidden"):
        problems.append(f"hidden: {got['input_types'].get('hidden')} != {want['input_types'].get('hidden')}")
    for key in want:
        if key != "input_types" and want[key] != got[key]:
            problems.append(f"{key}: {got[key]!r} != {want[key]!r}")
    return problems


@pytest.fixture(scope="module")
def previous() -> dict:
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))["nodes"]


def test_the_nodes_are_the_previous_releases_nodes(comfyui, previous):
    assert list(comfyui.nodes) == list(previous), "the same node ids, in the same order"


@pytest.mark.parametrize("node_id", sorted(json.loads(SNAPSHOT.read_text(encoding="utf-8"))["nodes"]))
def test_each_v3_node_presents_the_previous_releases_definition(comfyui, previous, node_id):
    assert differences(node_id, previous[node_id], describe(comfyui.nodes[node_id])) == []


def test_the_comparison_sees_a_changed_default_a_reordered_input_and_a_lost_tooltip(comfyui, previous):
    """The check itself: each kind of drift that would break a saved workflow is reported."""
    sampler = describe(comfyui.nodes["ConsisIDSampler"])
    changed = copy.deepcopy(sampler)
    changed["input_types"]["required"]["steps"][1]["default"] = 30
    (problem,) = differences("ConsisIDSampler", previous["ConsisIDSampler"], changed)
    assert problem.startswith("required.steps: ") and "'default': 30" in problem
    reordered = copy.deepcopy(sampler)
    required = reordered["input_types"]["required"]
    reordered["input_types"]["required"] = {"seed": required.pop("seed"), **required}
    assert differences("ConsisIDSampler", previous["ConsisIDSampler"], reordered)[0].startswith("required inputs")
    untipped = copy.deepcopy(sampler)
    untipped["output_tooltips"] = [None]
    assert differences("ConsisIDSampler", previous["ConsisIDSampler"], untipped) == [
        f"output_tooltips: [None] != {sampler['output_tooltips']!r}"]


_REAL_SCRIPT = """
import asyncio, importlib.util, inspect, json, sys
sys.path.insert(0, ".")  # the ComfyUI checkout (cwd): its folder_paths and comfy_api
import folder_paths
spec = importlib.util.spec_from_file_location("ComfyUI-ConsisID", sys.argv[1] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[1]])
pack = importlib.util.module_from_spec(spec)
sys.modules["ComfyUI-ConsisID"] = pack
spec.loader.exec_module(pack)
{describe}
classes = asyncio.run(pack.comfy_entrypoint().get_node_list())
print(json.dumps({{cls.GET_SCHEMA().node_id: describe(cls) for cls in classes}}))
"""


def test_a_real_comfyui_presents_the_same_definitions(previous):
    """The same comparison with ComfyUI's own comfy_api (COMFYUI_DIR, run by COMFYUI_PYTHON); skipped without one."""
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir or not os.path.isfile(os.path.join(comfy_dir, "comfy_api", "v0_0_2", "__init__.py")):
        pytest.skip("COMFYUI_DIR (a ComfyUI 0.8 checkout) is not set: the stand-in's comfy_api was checked instead")
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    script = _REAL_SCRIPT.format(describe=inspect.getsource(describe))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # leave the checkout as found
    done = subprocess.run([python, "-c", script, str(REPO)], cwd=comfy_dir, capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(found) == list(previous)
    assert {node_id: differences(node_id, previous[node_id], found[node_id]) for node_id in found} == \
        {node_id: [] for node_id in found}
