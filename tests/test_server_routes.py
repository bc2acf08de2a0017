"""GET /consisid/models through the ComfyUI stand-in (tests/comfy_stub) served by a real aiohttp app on loopback."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import urllib.request

import pytest

import comfy_stub
from test_model_status import build_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_routes_module():
    """nodes/server_routes.py by path: inside ComfyUI it is part of the pack package, `nodes` is ComfyUI's own."""
    spec = importlib.util.spec_from_file_location("consisid_server_routes", os.path.join(REPO, "nodes", "server_routes.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def comfy(tmp_path):
    folder_paths = comfy_stub.activate(tmp_path / "ComfyUI")
    yield folder_paths
    comfy_stub.deactivate()


def test_register_does_nothing_without_comfyui():
    comfy_stub.deactivate()
    assert _load_routes_module().register_routes() is False


def _serve_and_get(routes, path: str):
    """Serve the route table on 127.0.0.1 (free port) and GET `path`; returns (status, json)."""
    from aiohttp import web

    async def main():
        app = web.Application()
        app.add_routes(routes)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]

        def fetch():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        try:
            return await asyncio.get_running_loop().run_in_executor(None, fetch)
        finally:
            await runner.cleanup()

    return asyncio.run(asyncio.wait_for(main(), 30))


def test_route_reports_model_folders_and_insightface(comfy, tmp_path):
    pytest.importorskip("aiohttp", reason="aiohttp (part of every ComfyUI install) is needed to serve the route")
    insight = os.path.join(comfy.models_dir, "insightface", "models", "antelopev2")
    build_model(os.path.join(comfy.models_dir, "consisid", "ConsisID-preview"), antelope_dir=insight)
    extra = tmp_path / "elsewhere"
    build_model(extra / "Other")
    os.remove(extra / "Other" / "model_index.json")
    comfy.add_model_folder_path("consisid", str(extra))  # as extra_model_paths.yaml would

    module = _load_routes_module()
    assert module.register_routes() is True
    assert module.register_routes() is True, "registering twice is harmless"
    assert _load_routes_module().register_routes() is True, "a second copy of the module adds no duplicate"
    server = sys.modules["server"].PromptServer.instance
    assert [r.path for r in server.routes if getattr(r, "path", None) == module.ROUTE] == [module.ROUTE]
    server = sys.modules["server"].PromptServer.instance
    status, data = _serve_and_get(server.routes, module.ROUTE)
    assert status == 200
    models = {m["name"]: m for m in data["models"]}
    assert set(models) == {"ConsisID-preview", "Other"}
    preview = models["ConsisID-preview"]
    assert preview["ok"] and preview["problems"] == 0 and preview["antelopev2_dir"] == insight
    assert preview["native"] == {"width": 720, "height": 480, "num_frames": 49}
    other = models["Other"]
    (missing,) = [f for f in other["files"] if f["problem"]]
    assert missing["target"] == str(extra / "Other" / "model_index.json") and missing["status"] == "missing"
    assert missing["source"]["download_url"].endswith("/resolve/main/model_index.json")
    assert os.path.join(comfy.models_dir, "consisid") in data["consisid_dirs"] and str(extra) in data["consisid_dirs"]
    assert data["hf_repo"].startswith("https://huggingface.co/")


def test_route_with_nothing_installed_lists_where_files_go(comfy):
    pytest.importorskip("aiohttp", reason="aiohttp (part of every ComfyUI install) is needed to serve the route")
    module = _load_routes_module()
    module._registered = False
    assert module.register_routes()
    status, data = _serve_and_get(sys.modules["server"].PromptServer.instance.routes, module.ROUTE)
    assert status == 200 and data["ok"] is False
    (model,) = data["models"]
    assert model["exists"] is False and model["path"] == os.path.join(comfy.models_dir, "consisid", "ConsisID-preview")


def test_route_labels_are_the_words_of_the_cli_table(comfy):
    """The badge popup shows `label`: the same word `check-models` prints for that file (WRONG SIZE, not size_mismatch)."""
    pytest.importorskip("aiohttp", reason="aiohttp (part of every ComfyUI install) is needed to serve the route")
    from consisid_core import catalog, model_status
    from test_model_status import write_sized

    folder = os.path.join(comfy.models_dir, "consisid", "ConsisID-preview")
    build_model(folder)
    write_sized(os.path.join(folder, "face_encoder", catalog.RETINAFACE_FILE), 120_000_000)
    os.remove(os.path.join(folder, "face_encoder", catalog.BISENET_FILE))
    module = _load_routes_module()
    module._registered = False
    assert module.register_routes()
    status, data = _serve_and_get(sys.modules["server"].PromptServer.instance.routes, module.ROUTE)
    (model,) = data["models"]
    problems = {f["path"]: f for f in model["files"] if f["problem"]}
    assert {p: (f["status"], f["label"]) for p, f in problems.items()} == {
        f"face_encoder/{catalog.RETINAFACE_FILE}": (model_status.SIZE_MISMATCH, "WRONG SIZE"),
        f"face_encoder/{catalog.BISENET_FILE}": (model_status.MISSING, "MISSING"),
    }
    table = model_status.format_folder(model_status.check_model_folder(folder))
    for path, entry in problems.items():
        (line,) = [line for line in table.splitlines() if f" {path} " in line]
        assert line.strip().startswith(entry["label"] + " "), line
