"""Saved workflows keep running in a real ComfyUI: every shipped API workflow and every API and UI workflow of the
previous (V1-node) release, queued against the V3 nodes on the tiny model. Gated like test_real_comfyui.py
(COMFYUI_DIR, COMFYUI_PYTHON; Chromium for the UI files)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
from pathlib import Path

import pytest

from consisid_core.demo.metrics_models import write_eval_models
from support.node_graph import DEFAULT_PHOTO, FACE_FILE, MODEL_NAME, install_tiny_model
from support.pack import REPO

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

if not os.environ.get("COMFYUI_DIR") or not (Path(os.environ["COMFYUI_DIR"]) / "main.py").is_file():
    print("\nskipping the saved-workflow runs in a real ComfyUI: COMFYUI_DIR is not set", file=sys.stderr)
    pytest.skip("COMFYUI_DIR is not set (a ComfyUI checkout, and COMFYUI_PYTHON its interpreter)",
                allow_module_level=True)
pytest.importorskip("aiohttp", reason="the e2e client needs aiohttp (part of every ComfyUI install)")
from support import comfy_server  # noqa: E402

PREVIOUS = REPO / "tests" / "nodes" / "previous_release"
API_FILES = [REPO / "workflows" / "api" / p.name for p in sorted((REPO / "workflows" / "api").glob("*.json"))]
API_FILES += sorted(PREVIOUS.glob("*_api.json"))
UI_FILES = sorted(p for p in PREVIOUS.glob("*.json") if not p.name.endswith("_api.json")
                  and p.name != "v1_node_definitions.json")
TINY = {"precision": "fp32", "memory_mode": "none", "width": 48, "height": 32, "steps": 2, "num_frames": 9,
        "takes": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfyui_saved")
    install_tiny_model(base / "models" / "consisid" / MODEL_NAME)
    write_eval_models(base / "models")
    running = comfy_server.start(Path(os.environ["COMFYUI_DIR"]), os.environ.get("COMFYUI_PYTHON", sys.executable),
                                 base, REPO)
    yield running
    running.stop()


def _tiny(prompt: dict) -> dict:
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        for key, value in TINY.items():
            if key in node["inputs"] and not isinstance(node["inputs"][key], list):
                node["inputs"][key] = value
    return prompt


def _label(path: Path) -> str:
    return ("previous release: " if path.parent == PREVIOUS else "shipped: ") + path.name


@pytest.mark.parametrize("path", API_FILES, ids=_label)
def test_api_workflow_runs(server, path):
    """Queued as saved (only sizes and steps made tiny): validates, runs, and every output node reports."""
    prompt = _tiny(json.loads(path.read_text(encoding="utf-8")))

    async def main():
        async with comfy_server.Client(server) as client:
            await client.upload_image(DEFAULT_PHOTO, FACE_FILE)
            status, body = await client.queue(prompt)
            assert status == 200, body
            events = await client.follow(body["prompt_id"])
            assert events.outcome == "execution_success", events.of("execution_error")
            _, history = await client.get_json(f"/history/{body['prompt_id']}")
            return history[body["prompt_id"]]["outputs"]

    outputs = asyncio.run(main())
    shown = {node_id for node_id, node in prompt.items() if node["class_type"].startswith(("VHS_", "SaveVideo"))
             or node["class_type"] in ("ConsisIDIdentityScore", "ConsisIDPickTake")}
    assert shown <= set(outputs), f"output nodes without output: {sorted(shown - set(outputs))}"


@pytest.mark.parametrize("path", UI_FILES, ids=_label)
def test_previous_release_ui_workflow_runs_from_the_canvas(server, tmp_path, path):
    """The previous release's UI file, opened in the real frontend and run with its own Run button."""
    import shutil

    from support.canvas_runs import load_and_run_js
    from support.canvas_view import WINDOW

    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium (apt-get install chromium) for the canvas run")

    async def main():
        async with comfy_server.Client(server) as client:
            await client.upload_image(DEFAULT_PHOTO, FACE_FILE)
        async with comfy_server.Browser(browser, tmp_path / "profile", window=WINDOW) as page:
            await page.open_comfyui(server.url + "/")
            return await page.evaluate(load_and_run_js(path.read_text(encoding="utf-8")))

    ran = asyncio.run(main())
    assert ran["status"] == "success", ran
