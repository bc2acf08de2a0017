"""End to end against a real ComfyUI: COMFYUI_DIR (a checkout) and COMFYUI_PYTHON (its interpreter, with this
pack's requirements installed). Skipped, with the reason printed, when COMFYUI_DIR is unset.

One server (CPU, free loopback port, this pack linked into its custom_nodes, a tiny random model in its
models/consisid/) serves every test: the pack imports cleanly and shows all its nodes under ConsisID; the API
workflows make videos with the requested frame count; POST /interrupt stops sampling and the next run works;
POST /free unloads our models through ComfyUI's memory manager; bad inputs come back as node errors.
"""

from __future__ import annotations

import asyncio
import copy
import io
import os
import sys
import time
from pathlib import Path

import pytest

from consisid_core.demo.metrics_models import write_eval_models
from support.node_graph import DEFAULT_PHOTO, FACE_FILE, MODEL_NAME, api_workflow, install_tiny_model, nodes_of
from support.pack import REPO
from support.workflows import UI_DIR, UI_TO_API

from test_pack_import import EXPECTED_NODE_IDS as NODE_IDS  # the one list of the pack's nodes

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


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
    write_eval_models(base / "models")  # random-weight scoring models: the scores and takes templates run too
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


def test_pack_imports_without_error_and_lists_every_node_under_consisid(server):
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
    model_input = ours["ConsisIDModelLoader"]["input"]["required"]["model"]  # a V3 Combo: ("COMBO", {"options"})
    assert model_input[0] == "COMBO" and model_input[1]["options"] == [MODEL_NAME], model_input
    assert ours["ConsisIDModelLoader"]["display_name"] == "ConsisID DiT Loader"
    status, stats = run(_stats(server))
    print(f"\nComfyUI version {stats['system']['comfyui_version']}, python {stats['system']['python_version'].split()[0]}")


async def _stats(server):
    async with comfy_server.Client(server) as client:
        return await client.get_json("/system_stats")


def _core_video(server, prompt: dict):
    """Run a core-video API prompt: its events, the saved video's bytes and the Sampler's progress ticks."""
    sampler = nodes_of(prompt, "ConsisIDSampler")[0]

    async def main():
        async with comfy_server.Client(server) as client:
            await _upload_face(client)
            events, outputs = await _run_ok(client, prompt)
            entry = outputs[nodes_of(prompt, "SaveVideo")[0]]["images"][0]
            return events, await client.view(entry)

    events, video = run(main())
    return events, video, [(d["value"], d["max"]) for d in events.of("progress") if d.get("node") == sampler]


def test_core_video_workflow_makes_the_requested_frames(server):
    events, video, ticks = _core_video(server, tiny("consisid_core_video_api.json", num_frames=17, seed=1))
    print(f"\ncore video: {_count_frames(video)} frames (17 requested), sampler progress {ticks}, "
          f"{events.binary_frames} preview frames")
    assert _count_frames(video) == 17
    assert ticks == [(1, 3), (2, 3), (3, 3)]
    assert events.binary_frames >= 1, "latent previews were sent (--preview-method auto)"


def test_parallel_workers_run_inside_comfyui_and_free_stops_them(server):
    """Worker processes spawned from ComfyUI's server (2 CPU ranks, CFG parallel) make the video; /free ends them."""
    from consisid_core.batch.parallel import with_parallel_workers
    from consisid_core.parallel import ParallelConfig

    prompt = with_parallel_workers(tiny("consisid_core_video_api.json", num_frames=9, seed=4), ParallelConfig(True))
    events, video, ticks = _core_video(server, prompt)

    async def free():
        async with comfy_server.Client(server) as client:
            return (await client.post_json("/free", {"unload_models": True}))[0]

    status = run(free())
    assert _count_frames(video) == 9
    assert ticks[-1] == (3, 3), ticks
    assert status == 200
    assert "starting 2 parallel workers" in server.log()
    deadline = time.monotonic() + 30  # /free is handled on ComfyUI's next queue check
    while "stopped the parallel workers" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "stopped the parallel workers" in server.log()


SHADOW_NODE = """
import os, sys
import comfy
sys.path.insert(0, os.path.dirname(comfy.__file__))  # ComfyUI/comfy first: `utils` now means comfy/utils.py
NODE_CLASS_MAPPINGS = {}
"""


def _worker_pids(server_pid: int) -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process(server_pid).children(recursive=True)
            if "consisid_core.parallel.worker_main" in " ".join(p.cmdline())]


def _ended(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("how", ["terminate", "kill"], ids=["SIGTERM", "SIGKILL"])
def test_parallel_workers_start_when_comfyui_runs_from_another_folder_and_end_with_it(tmp_path, how):
    """`python /abs/ComfyUI/main.py` from another folder, with ComfyUI/comfy first on sys.path (a custom node did
    it): the workers start and make the video; SIGTERM/SIGKILL of the server leaves no worker behind."""
    from consisid_core.batch.parallel import with_parallel_workers
    from consisid_core.parallel import ParallelConfig

    base, elsewhere = tmp_path / "base", tmp_path / "elsewhere"
    install_tiny_model(base / "models" / "consisid" / MODEL_NAME)
    (base / "custom_nodes" / "shadow_comfy_path").mkdir(parents=True)
    (base / "custom_nodes" / "shadow_comfy_path" / "__init__.py").write_text(SHADOW_NODE)
    elsewhere.mkdir()
    running = comfy_server.start(Path(os.environ["COMFYUI_DIR"]).resolve(), os.environ.get("COMFYUI_PYTHON", sys.executable),
                                 base, REPO, launch_dir=elsewhere)
    try:
        prompt = with_parallel_workers(tiny("consisid_core_video_api.json", num_frames=9, seed=5), ParallelConfig(True))
        _events, video, ticks = _core_video(running, prompt)
        assert _count_frames(video) == 9 and ticks[-1] == (3, 3)
        pids = _worker_pids(running.process.pid)
        assert len(pids) == 2, running.log()[-3000:]
        getattr(running.process, how)()
        running.process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while not all(_ended(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_ended(p) for p in pids), f"workers {pids} outlived the server's {how}"
    finally:
        running.stop()


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
    # a tiny step takes milliseconds while /interrupt makes a round trip through the client (5 steps seen on a busy
    # 2-core machine): 10 of 400 still shows Cancel is checked at every step, not at the end
    assert last < 400 and last - interrupted["at"] <= 10, "stopped within a few steps of the interrupt"
    assert _count_frames(video) == 9


def test_comfyui_loads_our_models_and_free_unloads_them(server):
    """Each model is an ordinary ComfyUI model: its "Requested to load" and "loaded completely" lines are ComfyUI's
    own, and POST /free unloads them through their stock ModelPatchers; the next run loads them again."""
    ours = ("T5TextEncoder", "ConsisIDTransformer", "CogVideoXVAE", "ConsisIDFaceModels")

    async def main():
        async with comfy_server.Client(server) as client:
            await _upload_face(client)
            status, _ = await client.post_json("/free", {"unload_models": True})  # (earlier tests loaded them)
            assert status == 200
            await asyncio.sleep(1.0)
            log = server.log()
            face_loaded = log.rfind("Requested to load ConsisIDFaceModels")
            face_unloaded = log.rfind("ConsisID: ComfyUI unloaded ConsisIDFaceModels")
            before = len(log)
            await _run_ok(client, tiny("consisid_core_video_api.json", seed=5))
            loaded = server.log()[before:]
            status, _ = await client.post_json("/free", {"unload_models": True})
            assert status == 200
            for _ in range(150):  # (ComfyUI's log may reach the file late under load)
                if all(f"ComfyUI unloaded {name}" in server.log()[before:] for name in ours):
                    break
                await asyncio.sleep(0.2)
            _events, outputs = await _run_ok(client, tiny("consisid_core_video_api.json", seed=6))
            await asyncio.sleep(1.0)
            freed = server.log()[before:]
            face = (face_loaded, face_unloaded, log, freed)
            return loaded, freed, outputs, face

    loaded, freed, outputs, (face_loaded, face_unloaded, log, freed_tail) = run(main())
    if face_loaded < 0:  # the face nodes ran in this test's run: their load and unload are in its part of the log
        assert "Requested to load ConsisIDFaceModels" in loaded and "unloaded ConsisIDFaceModels" in freed_tail
    else:  # loaded by an earlier test (their outputs are cached): unloaded since, by a /free
        assert "loaded completely" in log[face_loaded:face_loaded + 300]
        assert face_unloaded > face_loaded or "unloaded ConsisIDFaceModels" in freed_tail, "the face models left on /free"
    lines = loaded.splitlines()
    for name in ours[:3]:  # (the face nodes' outputs may be cached from earlier tests: their load is checked below)
        assert any(f"Requested to load {name}" in line for line in lines), f"{name} was loaded by ComfyUI"
    own = [line for line in lines if "loaded completely" in line or "loaded partially" in line]
    assert len(own) >= 3, f"ComfyUI's own load line for each model: {own}"
    for name in ours[:3]:
        assert f"ConsisID: ComfyUI unloaded {name}" in freed, \
            f"{name} left ComfyUI's loaded models on /free:\n" + "\n".join(freed.splitlines()[-40:])
    print("\n" + "\n".join(line for line in loaded.splitlines() if "load" in line))
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
    (error,) = sampler_errors  # one message, not one per widget (ComfyUI files one per VALIDATE_INPUTS argument)
    assert error["details"] == ("size - ConsisID Sampler (ConsisIDSampler): width=64 is not supported by any installed "
                                "ConsisID checkpoint (ConsisID-preview: 48x32 only, native 9 frames). Set width=48.")
    assert missing_status == 400
    loader = [n for n in missing_body["node_errors"].values() if n["class_type"] == "ConsisIDModelLoader"]
    assert "'NotDownloaded' was not found" in loader[0]["errors"][0]["details"]
    assert no_face.outcome == "execution_error"
    error = no_face.of("execution_error")[0]
    assert error["node_type"] == "ConsisIDFaceCropAlign", "the one node that reads the photo"
    assert "No usable face in the 12x12 photo" in error["exception_message"]


def _chromium() -> str:
    import shutil

    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium (apt-get install chromium) for the canvas check")
    return browser


def _save_screenshot(shot: dict, tmp_path: Path, name: str) -> Path:
    import base64

    target = Path(os.environ.get("CONSISID_CANVAS_DIR", str(tmp_path))) / name
    target.write_bytes(base64.b64decode(shot["data"]))
    print(f"\ncanvas screenshot: {target}")
    return target


@pytest.mark.parametrize("ui_name, api_name", sorted(UI_TO_API.items()))
def test_ui_workflow_opens_in_view_and_exports_our_api_file(server, tmp_path, ui_name, api_name):
    """The real frontend, in a 1280x720 window, loads the UI workflow with every node known and shows every node
    (as the frontend sizes it) clear of the sidebar, top bar, run button bar, workflow name and minimap; its own
    "Export (API)" conversion (app.graphToPrompt) gives exactly the shipped API file."""
    import json

    from support.canvas_view import PROBE_JS, WINDOW, hidden_nodes

    workflow = (UI_DIR / ui_name).read_text(encoding="utf-8")

    async def main():
        async with comfy_server.Client(server) as client:
            await _upload_face(client)
            status, info = await client.get_json("/object_info")
        async with comfy_server.Browser(_chromium(), tmp_path / "profile", window=WINDOW) as page:
            await page.open_comfyui(server.url + "/")
            result = await page.evaluate(
                "(async () => { const app = window.app ?? window.comfyAPI.app.app;"
                f" await app.loadGraphData({workflow}); await new Promise(r => setTimeout(r, 1500));"
                " const missing = app.graph._nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type);"
                " const p = await app.graphToPrompt(); return {missing, output: p.output}; })()"
            )
            probe = await page.evaluate(PROBE_JS)
            shot = await page.call("Page.captureScreenshot", format="png")
            return info, result, probe, shot

    info, result, probe, shot = run(main())
    _save_screenshot(shot, tmp_path, ui_name.replace(".json", ".png"))
    vhs = "VHS_VideoCombine" in info
    assert result["missing"] == ([] if vhs or "VHS_VideoCombine" not in workflow else ["VHS_VideoCombine"])
    saved = json.loads(workflow)["extra"]["ds"]
    assert probe["window"] == list(WINDOW)
    assert probe["ds"]["scale"] == saved["scale"] and probe["ds"]["offset"] == saved["offset"], "the saved view is used"
    assert probe["overlays"]["sidebar"] and probe["overlays"]["top bar"], "the interface was measured"
    assert hidden_nodes(probe) == []
    exported = json.loads(json.dumps(result["output"]))
    expected = api_workflow(api_name)
    if not vhs:
        expected = {k: v for k, v in expected.items() if v["class_type"] != "VHS_VideoCombine"}
    for node in exported.values():
        node.pop("_meta", None)
    for node in expected.values():
        node.pop("_meta", None)
    assert exported == expected


def test_template_browser_shows_our_workflows_with_title_and_thumbnail(server, tmp_path):
    """ComfyUI lists example_workflows/*.json; the frontend's template browser shows each under the pack with its
    file name as title and <name>.jpg as picture, and opening one shows all its nodes."""
    import json

    from support.canvas_view import PROBE_JS, WINDOW, hidden_nodes

    titles = sorted(name[:-len(".json")] for name in UI_TO_API)
    open_title = titles[0]

    async def main():
        async with comfy_server.Client(server) as client:
            status, listed = await client.get_json("/workflow_templates")
        async with comfy_server.Browser(_chromium(), tmp_path / "profile", window=(1280, 800)) as page:
            await page.open_comfyui(server.url + "/")
            cards = await page.evaluate(
                "(async () => { const app = window.app ?? window.comfyAPI.app.app;"
                " await app.extensionManager.command.execute('Comfy.BrowseTemplates');"
                " const sleep = (ms) => new Promise(r => setTimeout(r, ms));"
                " const leaf = (text) => [...document.querySelectorAll('[role=dialog] *')]"
                ".find(e => e.children.length === 0 && e.textContent.trim() === text);"
                " for (let i = 0; i < 60 && !leaf('ComfyUI-ConsisID'); i++) await sleep(500);"
                " leaf('ComfyUI-ConsisID')?.click();"
                f" for (let i = 0; i < 60 && !leaf({json.dumps(open_title)}); i++) await sleep(500);"
                " await sleep(1500);"
                " const imgs = [...document.querySelectorAll('[role=dialog] img')].filter(i => i.getBoundingClientRect().width > 0);"
                " const texts = [...document.querySelectorAll('[role=dialog] *')].filter(e => e.children.length === 0)"
                ".map(e => e.textContent.trim());"
                " const fetched = performance.getEntriesByType('resource').filter(r => r.name.includes('/workflow_templates/'))"
                ".map(r => [decodeURIComponent(r.name), r.responseStatus]);"
                " return {texts, fetched, widths: imgs.map(i => i.complete && i.naturalWidth)}; })()"
            )
            shot = await page.call("Page.captureScreenshot", format="png")
            await page.evaluate(
                "(async () => { const leaf = [...document.querySelectorAll('[role=dialog] *')]"
                f".find(e => e.children.length === 0 && e.textContent.trim() === {json.dumps(open_title)});"
                " leaf.click();"
                " await new Promise(r => setTimeout(r, 2500)); })()"
            )
            await page.call("Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=WINDOW[1],
                            deviceScaleFactor=1, mobile=False)
            await asyncio.sleep(1.0)
            opened = await page.evaluate(PROBE_JS)
            return listed, cards, shot, opened

    listed, cards, shot, opened = run(main())
    _save_screenshot(shot, tmp_path, "template_browser.png")
    assert sorted(listed.get("ComfyUI-ConsisID", [])) == titles
    assert all(title in cards["texts"] for title in titles), "the file names are the card titles"
    served = {url.rsplit("/", 1)[1] for url, status in cards["fetched"] if "/ComfyUI-ConsisID/" in url and status == 200}
    assert {f"{title}.jpg" for title in titles} <= served, cards["fetched"]
    assert sorted(cards["widths"]) == [512] * len(titles), "our thumbnails are shown, not the default picture"
    assert sorted(n[0] for n in opened["nodes"]) == sorted(
        n["type"] for n in json.loads((UI_DIR / f"{open_title}.json").read_text(encoding="utf-8"))["nodes"])
    assert hidden_nodes(opened) == [], "a template opened from the browser shows every node"


@pytest.mark.parametrize("ui_name", sorted(UI_TO_API))
def test_template_after_a_run_has_no_preview_over_another_node_and_a_note_without_scrolling(server, tmp_path, ui_name):
    """Each template, opened in a 1280x720 window and run with the page's own Run on the tiny model (previews on):
    the run succeeds, and afterwards no node (the Sampler with its preview, the video, the score plot) covers
    another; the note shows all its text without scrolling."""
    from support.canvas_runs import NOTE_JS, load_and_run_js
    from support.canvas_view import PROBE_JS, WINDOW, hidden_nodes

    workflow = (UI_DIR / ui_name).read_text(encoding="utf-8")

    async def main():
        async with comfy_server.Client(server) as client:
            await _upload_face(client)
        async with comfy_server.Browser(_chromium(), tmp_path / "profile", window=WINDOW) as page:
            await page.open_comfyui(server.url + "/")
            ran = await page.evaluate(load_and_run_js(workflow))
            probe = await page.evaluate(PROBE_JS)
            notes = await page.evaluate(NOTE_JS)
            shot = await page.call("Page.captureScreenshot", format="png")
            return ran, probe, notes, shot

    ran, probe, notes, shot = run(main())
    _save_screenshot(shot, tmp_path, ui_name.replace(".json", " (after a run).png"))
    assert ran["status"] == "success", ran
    overlaps = [found for found in hidden_nodes(probe) if " overlaps " in found]
    assert overlaps == [], "a node grown by its preview covers another"
    assert len(notes) == 1, notes
    assert notes[0]["hidden_y"] <= 0 and notes[0]["hidden_x"] <= 0, f"the note scrolls: {notes[0]}"


FRESH_JS = """(async () => {
  const app = window.app ?? window.comfyAPI.app.app; const sleep = (ms) => new Promise(r => setTimeout(r, ms));
  app.graph.clear(); let x = 100; const nodes = {};
  for (const type of %s) {
    const n = LiteGraph.createNode(type); n.pos = [x, 150]; app.graph.add(n); x += n.size[0] + 40; nodes[type] = n; }
  app.canvas.ds.scale = 1; app.canvas.ds.offset = [0, 0]; app.canvas.setDirty(true, true); await sleep(1500);
  const ctx = document.createElement('canvas').getContext('2d');
  return Object.fromEntries(Object.entries(nodes).map(([type, n]) => {
    ctx.font = n.titleFontStyle; const title = ctx.measureText(n.getTitle()).width;
    return [type, {title, width: n.size[0], pos: [...n.pos], badge: n.__consisidBadgeRect ?? null}]; }));
})()"""
POPUP_JS = """(() => {
  const box = document.getElementById('consisid-status-popup');
  const rect = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const tooltips = [...document.querySelectorAll('.node-tooltip')].filter((e) => e.getBoundingClientRect().width > 0);
  return {popup: box && rect(box), status: box ? [...box.querySelectorAll('tr td:first-child')].map((td) =>
    td.getBoundingClientRect().width) : [], tooltips: tooltips.map(rect)};
})()"""


def test_fresh_nodes_show_their_titles_and_the_badge_popup_is_wide_and_clear_of_the_tooltip(server, tmp_path):
    """Placed fresh at 1:1, the Face Models Loader's and the Global Extractor's titles are drawn whole (LiteGraph cuts a
    title wider than the node less two title heights) and the loader's badge starts right of the title. Hovering the
    title bar shows ComfyUI's node tooltip; clicking the badge opens the popup, whose status column is wide enough
    for a message and which no tooltip covers."""
    import json

    fresh_types = ["ConsisIDFaceModelsLoader", "ConsisIDGlobalExtractor"]

    async def main():
        async with comfy_server.Browser(_chromium(), tmp_path / "profile", window=(1280, 720)) as page:
            await page.open_comfyui(server.url + "/")
            nodes = await page.evaluate(FRESH_JS % json.dumps(fresh_types))
            shot = await page.call("Page.captureScreenshot", format="png")
            loader = nodes["ConsisIDFaceModelsLoader"]
            (px, py), (bx, by, bw, bh) = loader["pos"], loader["badge"]
            await page.call("Input.dispatchMouseEvent", type="mouseMoved", x=px + 60, y=py - 15)
            await asyncio.sleep(2.0)
            hovered = await page.evaluate(POPUP_JS)
            x, y = px + bx + bw / 2, py + by + bh / 2
            await page.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
            await asyncio.sleep(1.5)
            for kind in ("mousePressed", "mouseReleased"):
                await page.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
            await asyncio.sleep(0.5)
            for dx in (4, 8):  # the pointer rests on the title bar with the popup open: the tooltip would come back
                await page.call("Input.dispatchMouseEvent", type="mouseMoved", x=px + 60 + dx, y=py - 15)
                await asyncio.sleep(1.5)
            popup = await page.evaluate(POPUP_JS)
            popup_shot = await page.call("Page.captureScreenshot", format="png")
            return nodes, hovered, popup, shot, popup_shot

    nodes, hovered, popup, shot, popup_shot = run(main())
    _save_screenshot(shot, tmp_path, "fresh_nodes.png")
    _save_screenshot(popup_shot, tmp_path, "badge_popup.png")
    for node_type, node in nodes.items():
        assert node["width"] - 60 >= node["title"], (node_type, node)
    loader = nodes["ConsisIDFaceModelsLoader"]
    assert loader["badge"] and loader["badge"][0] >= 30 + loader["title"], loader
    assert hovered["tooltips"], "the node tooltip showed on hover (else this test checks nothing)"
    assert popup["popup"] and popup["status"] and min(popup["status"]) >= 240, popup
    left, top, right, bottom = popup["popup"]
    assert right - left >= 700, popup
    assert not any(t[0] < right and left < t[2] and t[1] < bottom and top < t[3] for t in popup["tooltips"]), popup
