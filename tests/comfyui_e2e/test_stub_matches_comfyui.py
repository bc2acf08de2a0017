"""The ComfyUI stand-in (tests/comfy_stub) keeps the real signatures: every function and class it defines exists
in COMFYUI_DIR's module of the same name with the same parameters. Its V3 schema (comfy_api) gives the same V1 view
of the example nodes in support/v3_examples.py (and of the pack's nodes once they are V3) as the real one, and its
harness validates and runs the example prompts with the same errors and ui as ComfyUI's executor (the real side runs
in a subprocess: COMFYUI_PYTHON, cwd COMFYUI_DIR). Skipped when COMFYUI_DIR is unset."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import comfy_stub
from support import v3_examples as EXAMPLES
from support.pack import PACK_NAME, REPO
from test_pack_import import EXPECTED_NODE_IDS  # the one list of the pack's nodes

STUB = Path(__file__).resolve().parents[1] / "comfy_stub"
MODULES = {
    "folder_paths.py": "folder_paths.py",
    "comfy/utils.py": "comfy/utils.py",
    "comfy/model_management.py": "comfy/model_management.py",
    "comfy/model_patcher.py": "comfy/model_patcher.py",
    "comfy/lora.py": "comfy/lora.py",
    "comfy/patcher_extension.py": "comfy/patcher_extension.py",
    "comfy/cli_args.py": "comfy/cli_args.py",
    "server.py": "server.py",
    "comfy_api/internal.py": "comfy_api/internal/__init__.py",
    "comfy_api/latest/__init__.py": "comfy_api/latest/__init__.py",
    "comfy_api/latest/_io.py": "comfy_api/latest/_io.py",
    "comfy_api/latest/_ui.py": "comfy_api/latest/_ui.py",
}
STUB_ONLY = {"folder_paths.py": {"set_base_path"}, "server.py": {"progress_hook", "_Routes", "_route_table"}}

pytestmark = pytest.mark.comfyui


def _definitions(path: Path) -> dict[str, list[str]]:
    """Top-level functions -> parameter names; classes -> their __init__ parameters (methods as Class.name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = [a.arg for a in node.args.args]
        elif isinstance(node, ast.ClassDef):
            found[node.name] = []
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found[f"{node.name}.{item.name}"] = [a.arg for a in item.args.args]
    return found


@pytest.mark.parametrize("stub_name, real_name", sorted(MODULES.items()))
def test_stub_signatures_match_the_real_comfyui(stub_name, real_name):
    if not os.environ.get("COMFYUI_DIR"):
        pytest.skip("COMFYUI_DIR is not set: cannot compare the stand-in with a real ComfyUI")
    real = _definitions(Path(os.environ["COMFYUI_DIR"]) / real_name)
    stub = _definitions(STUB / stub_name)
    skip = STUB_ONLY.get(stub_name, set())
    for name, params in stub.items():
        if name.split(".")[0] in skip or name.startswith("_"):
            continue
        assert name in real, f"{stub_name}: {name} does not exist in ComfyUI"
        if name.endswith("__init__") and stub_name == "server.py":
            assert params[:2] == real[name][:2], (name, params, real[name])  # PromptServer(loop)
            continue
        assert params == real[name], f"{stub_name}: {name}{params} != ComfyUI {real[name]}"


# ------------------------------------------------------------------ the V3 schema (comfy_api) and the executor

def _comfy_dir() -> Path:
    if not os.environ.get("COMFYUI_DIR"):
        pytest.skip("COMFYUI_DIR is not set: cannot compare the stand-in with a real ComfyUI")
    return Path(os.environ["COMFYUI_DIR"])


@pytest.fixture(scope="module")
def real_report(tmp_path_factory) -> dict:
    """support/v3_examples.py run by COMFYUI_PYTHON in COMFYUI_DIR: the examples, the pack (loaded by ComfyUI's own
    load_custom_node from a folder named like the users' clone) and the prompts' outcomes under real ComfyUI."""
    comfy_dir = _comfy_dir()
    base = tmp_path_factory.mktemp("real_base")
    link = tmp_path_factory.mktemp("custom_nodes") / PACK_NAME
    link.symlink_to(REPO, target_is_directory=True)
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    done = subprocess.run([python, str(EXAMPLES.__file__), str(comfy_dir), str(base), str(link)], cwd=comfy_dir,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, f"the real-ComfyUI probe failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return json.loads(lines[-1][len("REPORT "):])


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    """The stand-in active (folder_paths on an empty base, like the real probe's) and its comfy_api."""
    comfy_stub.activate(tmp_path_factory.mktemp("stub_base"))
    yield comfy_stub.api_module("comfy_api.latest")
    comfy_stub.deactivate()


def _same(real, ours) -> bool:
    return json.loads(json.dumps(real)) == json.loads(json.dumps(ours))


def test_io_subset_has_the_real_signatures(real_report, stub):
    ours = EXAMPLES.api_surface(stub.io, stub.ui, stub.ComfyExtension)
    different = [name for name in ours if not _same(real_report["surface"].get(name), ours[name])]
    assert not different, {name: {"ComfyUI": real_report["surface"].get(name), "stand-in": ours[name]} for name in different}


@pytest.mark.parametrize("node_id", [*EXAMPLES.V3_INFO_NODES, "ExampleV1"])
def test_example_nodes_give_the_same_v1_view(real_report, stub, node_id):
    """INPUT_TYPES(), RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS, OUTPUT_NODE, ... and GET_NODE_INFO_V1()."""
    ours = EXAMPLES.describe(EXAMPLES.build(stub.io, stub.ui)[node_id])
    real = real_report["examples"][node_id]
    different = [key for key in set(real) | set(ours) if not _same(real.get(key), ours.get(key))]
    assert not different, {key: {"ComfyUI": real.get(key), "stand-in": ours.get(key)} for key in different}


@pytest.mark.parametrize("case", list(EXAMPLES.PROMPTS))
def test_prompts_validate_and_run_as_in_comfyui(real_report, stub, case):
    """Validation errors (one per validate_inputs argument, linked inputs None), hidden values, NodeOutput/ui."""
    from comfy_stub import harness

    mappings = EXAMPLES.build(stub.io, stub.ui)
    ours = EXAMPLES.harness_outcome(harness, EXAMPLES.PROMPTS[case], mappings)
    assert _same(real_report["prompts"][case], ours), {"ComfyUI": real_report["prompts"][case], "stand-in": ours}


def test_the_packs_v3_nodes_look_the_same(real_report, stub):
    """When the pack's nodes are V3, their INPUT_TYPES/RETURN_TYPES/.../GET_NODE_INFO_V1 match real ComfyUI's."""
    from comfy_stub import harness
    from support.pack import import_pack

    pack = real_report.get("pack")
    assert pack and pack["loaded"], f"real ComfyUI could not load the pack: {pack}"
    classes, names = harness.node_mappings(import_pack(), name=PACK_NAME)
    assert sorted(classes) == sorted(EXPECTED_NODE_IDS), "the stand-in loaded all the pack's nodes"
    assert sorted([*pack["nodes"], *pack["v1_nodes"]]) == sorted(EXPECTED_NODE_IDS), "ComfyUI loaded all of them"
    v3 = {node_id: cls for node_id, cls in classes.items() if issubclass(cls, stub.io.ComfyNode)}
    assert sorted(pack["v1_nodes"]) == sorted(set(classes) - set(v3)), "the same nodes are V1 on both sides"
    if not v3:
        pytest.skip(f"the pack's nodes are V1 ({len(classes)} of them): nothing V3 to compare")
    assert sorted(pack["nodes"]) == sorted(v3)
    assert pack["display_names"] == names
    for node_id, cls in v3.items():
        ours, real = EXAMPLES.describe(cls), pack["nodes"][node_id]
        different = [key for key in set(real) | set(ours) if not _same(real.get(key), ours.get(key))]
        assert not different, {node_id: {key: {"ComfyUI": real.get(key), "stand-in": ours.get(key)} for key in different}}
