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


def test_pack_imports_like_a_comfyui_custom_node():
    """ComfyUI loads custom_nodes/<folder>/__init__.py under the folder's name and reads the mappings."""
    code = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ComfyUI-ConsisID", {str(REPO / '__init__.py')!r},
                                              submodule_search_locations=[{str(REPO)!r}])
module = importlib.util.module_from_spec(spec)
sys.modules["ComfyUI-ConsisID"] = module
spec.loader.exec_module(module)
assert isinstance(module.NODE_CLASS_MAPPINGS, dict) and isinstance(module.NODE_DISPLAY_NAME_MAPPINGS, dict)
assert module.WEB_DIRECTORY == "./web"
import consisid_core
assert consisid_core.__file__.startswith({str(REPO)!r})
import json
print(json.dumps([list(module.NODE_CLASS_MAPPINGS), list(module.NODE_DISPLAY_NAME_MAPPINGS)]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert "could not be loaded" not in result.stderr, result.stderr
    ids, named = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(ids) == sorted(EXPECTED_NODE_IDS), (
        f"{len(ids)} nodes registered, {len(EXPECTED_NODE_IDS)} expected: a node was lost or added without "
        "updating EXPECTED_NODE_IDS in tests/test_pack_import.py"
    )
    assert len(ids) == len(EXPECTED_NODE_IDS) and sorted(named) == sorted(ids)
    assert all(node_id.startswith("ConsisID") for node_id in ids), ids


def test_core_import_is_light():
    """`import consisid_core` must not pull torch models, diffusers or insightface."""
    code = "import sys, consisid_core; heavy = [m for m in ('diffusers', 'insightface', 'transformers') if m in sys.modules]; print(heavy); assert not heavy"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO))
    assert result.returncode == 0, result.stdout + result.stderr
