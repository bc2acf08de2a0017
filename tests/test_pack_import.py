"""The pack imports the way ComfyUI imports custom nodes, and consisid_core never needs ComfyUI."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_CORE = ("folder_paths", "comfy", "comfy_extras", "comfy_api", "server", "nodes", "execution")
FORBIDDEN_AT_RUNTIME = ("torchvision", "facexlib", "timm", "consisid_eva_clip", "skimage")

# Every node id the pack registers, in nodes/__init__.py's order. ADDING A NODE? Append its id here (and to
# nodes/__init__.py's _NODES); the import test below fails on any node missing from or extra to this list.
EXPECTED_NODE_IDS = (
    "ConsisIDModelLoader",
    "ConsisIDFaceModelsLoader",
    "ConsisIDFaceCropAlign",
    "ConsisIDLandmarkRenderer",
    "ConsisIDGlobalExtractor",
    "ConsisIDLocalExtractor",
    "ConsisIDTextEncode",
    "ConsisIDSampler",
    "ConsisIDDecode",
    "ConsisIDTeaCache",
    "ConsisIDLoRA",
    "ConsisIDEvalModelsLoader",
    "ConsisIDIdentityScore",
    "ConsisIDParallelWorkers",
    "ConsisIDTakes",
    "ConsisIDPickTake",
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_comfyui_or_reference_only_packages():
    offenders = []
    for path in sorted((REPO / "consisid_core").rglob("*.py")):
        bad = _imports(path) & set(FORBIDDEN_IN_CORE + FORBIDDEN_AT_RUNTIME)
        offenders += [f"{path.relative_to(REPO)}: {sorted(bad)}" for _ in [0] if bad]
    for path in sorted((REPO / "nodes").rglob("*.py")):
        bad = _imports(path) & set(FORBIDDEN_AT_RUNTIME)
        offenders += [f"{path.relative_to(REPO)}: {sorted(bad)}" for _ in [0] if bad]
    assert not offenders, offenders


def test_every_torch_load_is_weights_only():
    offenders = []
    for folder in ("consisid_core", "nodes"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" and \
                        getattr(getattr(node.func, "value", None), "id", None) == "torch":
                    ok = any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords)
                    if not ok:
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders


_IMPORT_AS_COMFYUI = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ComfyUI-ConsisID", {str(REPO / '__init__.py')!r},
                                              submodule_search_locations=[{str(REPO)!r}])
module = importlib.util.module_from_spec(spec)
sys.modules["ComfyUI-ConsisID"] = module
spec.loader.exec_module(module)
"""
# The stand-in ComfyUI (comfy_api, folder_paths, server...) in an empty base folder, as ComfyUI is when it loads us.
_STUB_COMFYUI = f"""
import sys, tempfile
sys.path.insert(0, {str(REPO / 'tests')!r})
import comfy_stub
comfy_stub.activate(tempfile.mkdtemp())
"""


def test_pack_imports_like_a_comfyui_custom_node():
    """ComfyUI 0.8 loads custom_nodes/<folder>/__init__.py under the folder's name; with no NODE_CLASS_MAPPINGS
    there it awaits comfy_entrypoint().get_node_list() and registers each class under its schema id and name."""
    code = _STUB_COMFYUI + _IMPORT_AS_COMFYUI + f"""
import asyncio, json
from comfy_api.v0_0_2 import ComfyExtension, io
assert not hasattr(module, "NODE_CLASS_MAPPINGS"), "ComfyUI would take the V1 mapping instead of comfy_entrypoint"
assert module.WEB_DIRECTORY == "./web"
extension = module.comfy_entrypoint()
assert isinstance(extension, ComfyExtension)
classes = asyncio.run(extension.get_node_list())
assert all(issubclass(cls, io.ComfyNode) for cls in classes)
import consisid_core
assert consisid_core.__file__.startswith({str(REPO)!r})
schemas = [cls.GET_SCHEMA() for cls in classes]
print(json.dumps([[s.node_id for s in schemas], [s.display_name for s in schemas]]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert "could not be loaded" not in result.stderr, result.stderr
    ids, named = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(ids) == sorted(EXPECTED_NODE_IDS), (
        f"{len(ids)} nodes registered, {len(EXPECTED_NODE_IDS)} expected: a node was lost or added without "
        "updating EXPECTED_NODE_IDS in tests/test_pack_import.py"
    )
    assert len(ids) == len(EXPECTED_NODE_IDS) and all(named) and len(set(named)) == len(named)
    assert all(node_id.startswith("ConsisID") for node_id in ids), ids


def test_a_comfyui_without_the_v3_api_gets_one_clear_message_not_a_crash():
    """Inside a ComfyUI older than 0.8 (its folder_paths, no comfy_api) the pack still imports and says which ComfyUI
    it needs; imported outside ComfyUI (a test runner importing the repo root, a tool) it logs nothing."""
    older = f"""
import sys
sys.path.insert(0, {str(REPO / 'tests' / 'comfy_stub')!r})  # its folder_paths ...
sys.modules["comfy_api"] = None  # ... and no comfy_api
""" + _IMPORT_AS_COMFYUI + "print('imported', hasattr(module, 'comfy_entrypoint'))"
    for code, told in ((older, True), (_IMPORT_AS_COMFYUI + "print('imported', True)", False)):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith("imported True")
        assert ("needs ComfyUI 0.8 or later" in result.stderr) is told, result.stderr
        assert "Traceback" not in result.stderr and "could not be loaded" not in result.stderr, result.stderr


def test_core_import_is_light():
    """`import consisid_core` must not pull torch models, diffusers or insightface."""
    code = "import sys, consisid_core; heavy = [m for m in ('diffusers', 'insightface', 'transformers') if m in sys.modules]; print(heavy); assert not heavy"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO))
    assert result.returncode == 0, result.stdout + result.stderr
