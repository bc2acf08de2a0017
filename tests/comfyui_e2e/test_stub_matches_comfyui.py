"""The ComfyUI stand-in (tests/comfy_stub) keeps the real signatures: every function and class it defines exists
in COMFYUI_DIR's module of the same name with the same parameters. Skipped when COMFYUI_DIR is unset."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

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
