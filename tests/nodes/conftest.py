"""A stand-in ComfyUI folder (tiny model under models/consisid/, the face photo in input/) and the pack imported
the way ComfyUI imports it, for driving the nodes without ComfyUI."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

import comfy_stub
from comfy_stub import core_nodes, harness
from support.node_graph import DEFAULT_PHOTO, FACE_FILE, MODEL_NAME, install_tiny_model
from support.pack import PACK_NAME, import_pack, pack_module


@pytest.fixture(scope="session")
def comfy_root(tmp_path_factory) -> Path:
    """ComfyUI-like base folder: models/consisid/ConsisID-preview (tiny random model + face_encoder), input photo."""
    base = tmp_path_factory.mktemp("ComfyUI")
    install_tiny_model(base / "models" / "consisid" / MODEL_NAME)
    (base / "input").mkdir()
    shutil.copy(DEFAULT_PHOTO, base / "input" / FACE_FILE)
    return base


_KEPT: list = []  # handles of earlier tests: kept alive so later tests reuse their loaded models (seconds each)


@pytest.fixture
def comfyui(comfy_root):
    """The ComfyUI stand-in active, the pack imported and its model folders registered (as at ComfyUI start)."""
    folder_paths = comfy_stub.activate(comfy_root)
    pack = import_pack()
    pack_module("nodes.comfy_bridge").register_model_folders()
    pack_module("nodes.prompt_checks").register()  # on this test's server, as at ComfyUI start
    classes, names = harness.node_mappings(pack, name=PACK_NAME)  # through comfy_entrypoint(), as ComfyUI 0.8
    mappings = {**classes, **core_nodes.MAPPINGS}
    yield SimpleNamespace(
        root=comfy_root,
        folder_paths=folder_paths,
        pack=pack,
        nodes=classes,  # the pack's node classes by id
        display_names=names,
        mappings=mappings,
        registry=pack_module("nodes.model_cache").REGISTRY,
        run=lambda prompt: harness.execute(prompt, mappings),
    )
    _KEPT.extend(h for h in pack_module("nodes.model_cache").REGISTRY.handles() if h not in _KEPT)
    comfy_stub.deactivate()
