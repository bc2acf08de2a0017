"""End to end against a real ComfyUI: COMFYUI_DIR (a checkout) and COMFYUI_PYTHON (its interpreter, with this
pack's requirements installed). Skipped, with the reason printed, when COMFYUI_DIR is unset.

One server (CPU, free loopback port, this pack linked into its custom_nodes, a tiny random model in its
models/consisid/) serves every test: the pack imports cleanly and shows nine nodes under ConsisID; the API
workflows make videos with the requested frame count; POST /interrupt stops sampling and the next run works;
POST /free releases our models; bad inputs come back as node errors.
"""

from __future__ import annotations

import asyncio
import copy
import io
import os
import sys
from pathlib import Path

import pytest

from support.node_graph import DEFAULT_PHOTO, FACE_FILE, MODEL_NAME, api_workflow, install_tiny_model, nodes_of
from support.pack import REPO

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

NODE_IDS = ("ConsisIDModelLoader", "ConsisIDFaceModelsLoader", "ConsisIDFaceCropAlign", "ConsisIDLandmarkRenderer",
            "ConsisIDGlobalExtractor", "ConsisIDLocalExtractor", "ConsisIDTextEncode", "ConsisIDSampler", "ConsisIDDecode")


def _skip_reason() -> str | None:
    if not os.environ.get("COMFYUI_DIR"):
        return "COMFYUI_DIR is not set (point it at a ComfyUI checkout, and COMFYUI_PYTHON at its interpreter)"
    if not (Path(os.environ["COMFYUI_DIR"]) / "main.py").is_file():
        return f"COMFYUI_DIR={os.environ['COMFYUI_DIR']} has no main.py"
    return None


if _skip_reason():
    print(f"\nskipping the real-ComfyUI end-to-end test: {_skip_reason()}", file=sys.stderr)
    pytest.skip(_skip_reason(), allow_module_level=True)

aiohttp = pytest.importorskip("aiohttp", reason="the e2e client needs aiohttp (part of every ComfyUI install)")
from support import comfy_server  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfyui_base")
    install_tiny_model(base / "models" / "consisid" / MODEL_NAME)
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    running = comfy_server.start(Path(os.environ["COMFYUI_DIR"]), python, base, REPO, extra_args=["--preview-method", "auto"])
    yield running
    running.stop()
    print(f"\nComfyUI server log: {running.log_path}")


def run(coro):
    return asyncio.run(coro)


def tiny(workflow: str, **overrides) -> dict:
    """A shipped API workflow set to the tiny model (48x32, fp32, few steps) plus `input=value` overrides."""
    prompt = copy.deepcopy(api_workflow(workflow))
    settings = {"precision": "fp32", "memory_mode": "none", "width": 48, "height": 32, "steps": 3, "num_frames": 9,
                **overrides}
    for node in prompt.values():
        for key, value in settings.items():
            if key in node["inputs"] and not isinstance(node["inputs"][key], list):
                node["inputs"][key] = value
    return prompt


async def _upload_face(client) -> None:
    await client.upload_image(DEFAULT_PHOTO, FACE_FILE)


async def _run_ok(client, prompt: dict):
    status, body = await client.queue(prompt)
    assert status == 200, body
    events = await client.follow(body["prompt_id"])
    errors = events.of("execution_error")
    assert events.outcome == "execution_success", errors
    status, history = await client.get_json(f"/history/{body['prompt_id']}")
    return events, history[body["prompt_id"]]["outputs"]


def _count_frames(data: bytes) -> int:
    import tempfile

    from consisid_core.video import count_frames

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "video.mp4"
        path.write_bytes(data)
        return count_frames(path)


def test_pack_imports_without_error_and_lists_nine_nodes_under_consisid(server):
    log = server.log()
    assert "ComfyUI-ConsisID" in log, "the pack was loaded"
    for bad in ("could not be loaded", "IMPORT FAILED", "Cannot import"):
        for line in log.splitlines():
            assert not (bad in line and "ConsisID" in line), line

    async def main():
        async with comfy_server.Client(server) as client:
            return await client.get_json("/object_info")

    status, info = run(main())
    assert status == 200
    ours = {k: v for k, v in info.items() if v.get("category") == "ConsisID"}
    assert sorted(ours) == sorted(NODE_IDS)
    assert ours["ConsisIDModelLoader"]["input"]["required"]["model"][0] == [MODEL_NAME]
    assert ours["ConsisIDModelLoader"]["display_name"] == "ConsisID DiT Loader"
    status, stats = run(_stats(server))
    print(f"\nComfyUI version {stats['system']['comfyui_version']}, python {stats['system']['python_version'].split()[0]}")


async def _stats(server):
    async with comfy_server.Client(server) as client:
        return await client.get_json("/system_stats")


def test_core_video_workflow_makes_the_requested_frames(server):
    prompt = tiny("consisid_core_video_api.json", num_frames=17, seed=1)
    sampler = nodes_of(prompt, "ConsisIDSampler")[0]

    async def main():
        async with comfy_server.Client(server) as client:
            await _upload_face(client)
            events, outputs = await _run_ok(client, prompt)
            entry = outputs[nodes_of(prompt, "SaveVideo")[0]]["images"][0]
            return events, await client.view(entry)

    events, video = run(main())
    ticks = [(d["value"], d["max"]) for d in events.of("progress") if d.get("node") == sampler]
    print(f"\ncore video: {_count_frames(video)} frames (17 requested), sampler progress {ticks}, "
          f"{events.binary_frames} preview frames")
    assert _count_frames(video) == 17
    assert ticks == [(1, 3), (2, 3), (3, 3)]
    assert events.binary_frames >= 1, "latent previews were sent (--preview-method auto)"


def test_vhs_workflow_makes_the_requested_frames(server):
    async def main():
        async with comfy_server.Client(server) as client:
            status, info = await client.get_json("/object_info/VHS_VideoCombine")
            if "VHS_VideoCombine" not in info:
                return None
            await _upload_face(client)
            prompt = tiny("consisid_basic_api.json", num_frames=9, seed=2)
            _events, outputs = await _run_ok(client, prompt)
            entry = outputs[nodes_of(prompt, "VHS_VideoCombine")[0]]["gifs"][0]
            return await client.view(entry)

    video = run(main())
    if video is None:
        pytest.skip("ComfyUI-VideoHelperSuite is not installed in COMFYUI_DIR/custom_nodes")
    print(f"\nVHS video: {_count_frames(video)} frames (9 requested)")
    assert _count_frames(video) == 9


def test_interrupt_stops_sampling_and_the_next_run_works(server):
    long = tiny("consisid_core_video_api.json", steps=400, seed=3)
    sampler = nodes_of(long, "ConsisIDSampler")[0]

    async def main():
        async with comfy_server.Client(server) as client:
            await _upload_face(client)
            status, body = await client.queue(long)
            assert status == 200, body
            interrupted = {}

            async def on_message(kind, data):
                if kind == "progress" and data.get("node") == sampler and not interrupted:
                    interrupted["at"] = data["value"]
                    await client.post_json("/interrupt", {})

            events = await client.follow(body["prompt_id"], on_message)
            after, outputs = await _run_ok(client, tiny("consisid_core_video_api.json", seed=4))
            entry = outputs[nodes_of(long, "SaveVideo")[0]]["images"][0]
            return interrupted, events, await client.view(entry)

    interrupted, events, video = run(main())
    assert events.outcome == "execution_interrupted"
    assert events.of("execution_interrupted")[0]["node_id"] == sampler
    last = max(d["value"] for d in events.of("progress") if d.get("node") == sampler)
    print(f"\ninterrupt sent at step {interrupted['at']}/400, last step reported {last}, then a new run made "
          f"{_count_frames(video)} frames")
    assert last < 400 and last - interrupted["at"] <= 3, "stopped within a few steps of the interrupt"
    assert _count_frames(video) == 9


def test_free_memory_releases_our_models_and_runs_continue(server):
    async def main():
        async with comfy_server.Client(server) as client:
            await _upload_face(client)
            await _run_ok(client, tiny("consisid_core_video_api.json", seed=5))
            status, _ = await client.post_json("/free", {"unload_models": True})
            assert status == 200
            for _ in range(50):
                if "released" in server.log() and "cached model(s) at ComfyUI's request" in server.log():
                    break
                await asyncio.sleep(0.2)
            _events, outputs = await _run_ok(client, tiny("consisid_core_video_api.json", seed=6))
            return outputs

    outputs = run(main())
    assert "cached model(s) at ComfyUI's request" in server.log()
    assert outputs


def test_bad_inputs_come_back_as_node_errors(server):
    from PIL import Image

    async def main():
        async with comfy_server.Client(server) as client:
            wrong_size = await client.queue(tiny("consisid_core_video_api.json", width=64))
            missing = await client.queue(tiny("consisid_core_video_api.json", model="NotDownloaded"))
            small = io.BytesIO()
            Image.new("RGB", (12, 12), (128, 128, 128)).save(small, format="PNG")
            path = server.base / "small_face.png"
            path.write_bytes(small.getvalue())
            await client.upload_image(path, "small_face.png")
            status, body = await client.queue(tiny("consisid_core_video_api.json", image="small_face.png", seed=7))
            assert status == 200, body
            no_face = await client.follow(body["prompt_id"])
            return wrong_size, missing, no_face

    (size_status, size_body), (missing_status, missing_body), no_face = run(main())
    assert size_status == 400
    sampler_errors = [e for n in size_body["node_errors"].values() if n["class_type"] == "ConsisIDSampler" for e in n["errors"]]
    assert sampler_errors and "not supported by any installed ConsisID checkpoint" in sampler_errors[0]["details"]
    assert "Set width=48, height=32" in sampler_errors[0]["details"]
    assert missing_status == 400
    loader = [n for n in missing_body["node_errors"].values() if n["class_type"] == "ConsisIDModelLoader"]
    assert "'NotDownloaded' was not found" in loader[0]["errors"][0]["details"]
    assert no_face.outcome == "execution_error"
    error = no_face.of("execution_error")[0]
    assert error["node_type"] in ("ConsisIDFaceCropAlign", "ConsisIDLocalExtractor")
    assert "No usable face in the 12x12 photo" in error["exception_message"]


@pytest.mark.parametrize("ui_name, api_name", [("consisid_basic.json", "consisid_basic_api.json"),
                                               ("consisid_core_video.json", "consisid_core_video_api.json")])
def test_ui_workflow_loads_in_the_canvas_and_exports_our_api_file(server, tmp_path, ui_name, api_name):
    """The real frontend loads the UI workflow with every node known, and its own "Export (API)" conversion
    (app.graphToPrompt) gives exactly the shipped API file: widget order, seed control and VHS widgets included."""
    import base64
    import json
    import shutil

    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium (apt-get install chromium) for the canvas check")
    workflow = (REPO / "workflows" / ui_name).read_text(encoding="utf-8")

    async def main():
        async with comfy_server.Client(server) as client:
            await _upload_face(client)
            status, info = await client.get_json("/object_info")
        async with comfy_server.Browser(browser, tmp_path / "profile") as page:
            await page.open_comfyui(server.url + "/")
            result = await page.evaluate(
                "(async () => { const app = window.app ?? window.comfyAPI.app.app;"
                f" await app.loadGraphData({workflow}); await new Promise(r => setTimeout(r, 1000));"
                " const missing = app.graph._nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type);"
                " const p = await app.graphToPrompt(); return {missing, output: p.output}; })()"
            )
            shot = await page.call("Page.captureScreenshot", format="png")
            return info, result, base64.b64decode(shot["data"])

    info, result, png = run(main())
    target = Path(os.environ.get("CONSISID_CANVAS_DIR", str(tmp_path))) / ui_name.replace(".json", ".png")
    target.write_bytes(png)
    print(f"\ncanvas screenshot: {target}")
    vhs = "VHS_VideoCombine" in info
    assert result["missing"] == ([] if vhs or "basic" not in ui_name else ["VHS_VideoCombine"])
    exported = json.loads(json.dumps(result["output"]))
    expected = api_workflow(api_name)
    if not vhs:
        expected = {k: v for k, v in expected.items() if v["class_type"] != "VHS_VideoCombine"}
    for node in exported.values():
        node.pop("_meta", None)
    for node in expected.values():
        node.pop("_meta", None)
    assert exported == expected
