"""web/js/consisid_status.js: badge logic under node with stand-ins for ComfyUI's app/api modules, and the
real thing in headless Chromium against a real ComfyUI when COMFYUI_DIR is set (skipped otherwise)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTENSION = os.path.join(REPO, "web", "js", "consisid_status.js")

APP_STUB = """
export const registered = [];
export const app = {
  graph: { _nodes: [], dirty: 0, setDirtyCanvas() { this.dirty += 1; } },
  registerExtension(ext) { registered.push(ext); },
};
"""

API_STUB = """
export const api = {
  calls: [],
  async fetchApi(route) {
    this.calls.push(route);
    const mode = globalThis.__routeMode;
    if (mode === "throw") throw new TypeError("Failed to fetch");
    if (mode === "404") return { ok: false, status: 404, json: async () => ({}) };
    return { ok: true, status: 200, json: async () => globalThis.__routeData };
  },
};
"""

DRIVER = r"""
import { app, registered } from "./scripts/app.js";
import { api } from "./scripts/api.js";
globalThis.LiteGraph = { NODE_TITLE_HEIGHT: 30 };
globalThis.__routeData = JSON.parse(process.argv[2]);
globalThis.__routeMode = process.argv[3];
await import("./extensions/consisid/js/consisid_status.js");  // served as /extensions/<name>/js/...
await import("./extensions/ComfyUI-ConsisID/js/consisid_status.js");  // ComfyUI may serve the web folder twice
const ext = registered[0];

function makeType(name) {
  function NodeType() {}
  NodeType.prototype.onDrawForeground = function () { this.ownDraws = (this.ownDraws ?? 0) + 1; };
  ext.beforeRegisterNodeDef(NodeType, { name });
  return NodeType;
}
function makeNode(Type, type, widgets, inputs = []) {
  const node = new Type();
  Object.assign(node, { type, comfyClass: type, size: [300, 200], flags: {}, title: type, inputs,
    widgets: Object.entries(widgets).map(([name, value]) => ({ name, value })) });
  app.graph._nodes.push(node);
  return node;
}
const texts = [];
const ctx = { save() {}, restore() {}, beginPath() {}, rect() {}, roundRect() {}, fill() {},
  measureText: (t) => ({ width: t.length * 6 }), fillText(t) { texts.push(t); },
  set font(v) {}, set fillStyle(v) {}, set textBaseline(v) {} };

await ext.setup();
const dit = makeNode(makeType("ConsisIDModelLoader"), "ConsisIDModelLoader", { model: "ConsisID-preview", precision: "bf16" });
const face = makeNode(makeType("ConsisIDFaceModelsLoader"), "ConsisIDFaceModelsLoader", { model: "ConsisID-preview" });
const Sampler = makeType("ConsisIDSampler");
const sampler = makeNode(Sampler, "ConsisIDSampler", { seed: 1, width: 720, height: 480, num_frames: 49 }, [{ name: "model" }]);
sampler.getInputNode = (slot) => (slot === 0 ? dit : null);
const other = makeType("KSampler");
const result = {};
for (const [key, node] of Object.entries({ dit, face, sampler })) {
  node.onDrawForeground(ctx);
  result[key] = { badge: node.__consisidBadge, rect: node.__consisidBadgeRect, ownDraws: node.ownDraws };
}
sampler.widgets.find((w) => w.name === "num_frames").value = 9;
sampler.onDrawForeground(ctx);
result.samplerChanged = globalThis.ConsisIDStatus.badgeFor(sampler);
const appended = [];
globalThis.document = {
  body: { appendChild(el) { appended.push(el); } },
  getElementById(id) { return appended.find((e) => e.id === id && !e.removed) ?? null; },
  createElement() {
    return { style: {}, innerHTML: "", remove() { this.removed = true; }, q: {},
             querySelector(sel) { return (this.q[sel] ??= {}); } };
  },
};
const [x, y] = face.__consisidBadgeRect ?? [200, -20];
result.clickOutside = face.onMouseDown({}, [x - 50, y + 100]) ?? null;
result.clickInside = face.onMouseDown({}, [x + 2, y + 2]) ?? null;
result.popup = appended.filter((e) => !e.removed).map((e) => e.innerHTML).join("");
const box = appended.find((e) => e.id === "consisid-status-popup" && !e.removed);
const tooltipRule = () => appended.filter((e) => e.id === "consisid-status-popup-style" && !e.removed)
  .map((e) => e.textContent).join("");
result.popupCss = box?.style.cssText ?? null;
result.tooltipRuleOpen = tooltipRule();
box?.q["#consisid-status-close"]?.onclick?.();
result.tooltipRuleClosed = tooltipRule();
result.popupClosed = !appended.some((e) => e.id === "consisid-status-popup" && !e.removed);
// freshly placed nodes: the canvas gives them a width from their slots and widgets only
const fresh = {};
for (const [type, title] of [["ConsisIDFaceModelsLoader", "ConsisID Face Models Loader"],
                             ["ConsisIDGlobalExtractor", "Global Extractor"], ["KSampler", "KSampler"]]) {
  const node = new (makeType(type))();
  Object.assign(node, { type, comfyClass: type, title, size: [150, 80], flags: {}, widgets: [] });
  node.onNodeCreated?.();
  fresh[type] = { width: node.size[0] };
  if (type === "ConsisIDFaceModelsLoader") {
    node.widgets = [{ name: "model", value: "ConsisID-preview" }];
    node.onDrawForeground(ctx);
    fresh[type].badge = node.__consisidBadgeRect;
  }
}
result.fresh = fresh;
result.texts = texts;
result.calls = api.calls;
result.otherPatched = other.prototype.onMouseDown !== undefined;
result.registeredCount = registered.length;
console.log(JSON.stringify(result));
"""


def _route_data(face_problems: int, statuses: tuple = ()) -> dict:
    """A GET /consisid/models body: `face_problems` missing face_encoder files, then one file per extra status."""
    from consisid_core.model_status import LABELS

    files = [{"path": "transformer/config.json", "component": "transformer", "status": "found", "problem": False,
              "target": "/m/ConsisID-preview/transformer/config.json", "source": {}}]
    for i in range(face_problems):
        files.append({"path": f"face_encoder/f{i}", "component": "face_encoder", "status": "missing", "problem": True,
                      "target": f"/m/ConsisID-preview/face_encoder/f{i}", "source": {"download_url": "https://x"}})
    for status in statuses:
        files.append({"path": f"face_encoder/{status}.pth", "component": "face_encoder", "status": status,
                      "problem": True, "message": f"why {status}", "target": f"/m/ConsisID-preview/face_encoder/{status}.pth",
                      "source": {"download_url": "https://x"}})
    for entry in files:
        entry["label"] = LABELS[entry["status"]]  # as FolderStatus.to_dict() sends it
    return {"ok": face_problems == 0, "consisid_dirs": ["/m"], "models": [{
        "name": "ConsisID-preview", "path": "/m/ConsisID-preview", "exists": True, "ok": face_problems == 0,
        "problems": face_problems, "native": {"width": 720, "height": 480, "num_frames": 49}, "files": files}]}


def _run_node(data: dict, mode: str = "ok") -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JS logic test needs it (apt-get install nodejs)")
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "scripts"))
        for name in ("consisid", "ComfyUI-ConsisID"):  # ComfyUI may serve the web folder under both names
            os.makedirs(os.path.join(tmp, "extensions", name, "js"))
            shutil.copy(EXTENSION, os.path.join(tmp, "extensions", name, "js", "consisid_status.js"))
        for name, text in (("scripts/app.js", APP_STUB), ("scripts/api.js", API_STUB), ("driver.mjs", DRIVER)):
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        with open(os.path.join(tmp, "package.json"), "w", encoding="utf-8") as handle:
            json.dump({"type": "module"}, handle)
        done = subprocess.run([node, "driver.mjs", json.dumps(data), mode], cwd=tmp, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_badges_from_the_route():
    result = _run_node(_route_data(face_problems=2))
    assert result["calls"] == ["/consisid/models"]
    assert result["registeredCount"] == 1, "a second copy of the script registers nothing"
    assert result["dit"]["badge"] == "all files found", "the DiT loader does not need face_encoder files"
    assert result["face"]["badge"] == "2 missing"
    assert result["sampler"]["badge"] is None, "720x480x49 is the native size: no warning"
    assert result["samplerChanged"]["text"] == "⚠ native 720x480x49" and "frames 9≠49" in result["samplerChanged"]["warning"]
    assert "all files found" in result["texts"] and "2 missing" in result["texts"]
    assert all(result[k]["ownDraws"] == 1 for k in ("dit", "face", "sampler")), "the node's own drawing still runs"
    x, y, w, h = result["face"]["rect"]
    assert y < 0 and x + w <= 300, "the badge sits in the title bar"
    assert result["otherPatched"] is False, "other node types are left alone"
    assert result["clickOutside"] is None and result["clickInside"] is True
    assert "/m/ConsisID-preview/face_encoder/f0" in result["popup"] and "/m/ConsisID-preview/face_encoder/f1" in result["popup"]


def test_popup_uses_the_cli_words_for_each_status():
    """The popup says WRONG SIZE / TRUNCATED / NESTED / MISSING like `check-models`, never the internal status."""
    from consisid_core import model_status

    statuses = (model_status.SIZE_MISMATCH, model_status.TRUNCATED, model_status.NESTED)
    result = _run_node(_route_data(1, statuses))
    assert result["face"]["badge"] == "4 file problems"
    popup = result["popup"]
    for status in statuses:
        assert f"{model_status.LABELS[status]}: why {status}" in popup
        assert f">{status}" not in popup, f"internal status {status!r} shown"
    assert ">MISSING<" in popup and ">missing" not in popup
    assert "WRONG SIZE: why size_mismatch" in popup


def test_popup_is_wide_enough_for_its_messages_and_hides_the_node_tooltip():
    """The popup is at least 700 px wide (up to 92% of the window) with a status column of at least 240 px, so a
    message like "WRONG SIZE: 443344 bytes on disk, 856461210 expected" wraps into two lines, not word by word;
    while it is open ComfyUI's node tooltip (.node-tooltip, shown on hover over the title bar) is hidden, and
    shown again once it is closed."""
    import re

    from consisid_core import model_status

    result = _run_node(_route_data(1, (model_status.SIZE_MISMATCH,)))
    width = re.search(r"(?:^|;)width:min\((\d+)px,(\d+)vw\)", result["popupCss"])
    assert width and int(width[1]) >= 700 and int(width[2]) >= 80, result["popupCss"]
    columns = re.findall(r"<td style=\"[^\"]*min-width:(\d+)px", result["popup"])
    assert columns and all(int(c) >= 240 for c in columns), result["popup"][:300]
    assert re.search(r"\.node-tooltip\s*\{[^}]*display:\s*none", result["tooltipRuleOpen"]), result["tooltipRuleOpen"]
    assert result["popupClosed"] and result["tooltipRuleClosed"] == "", "closing the popup gives the tooltip back"


def test_freshly_placed_nodes_show_their_whole_title_beside_the_badge():
    """LiteGraph cuts a title wider than the node less two title heights (60 px) and our badge sits at the right of
    the title bar: a new Face Models Loader or Global Extractor is widened to fit (8 px a character where no canvas
    measures text); other packs' nodes are left alone."""
    result = _run_node(_route_data(2))
    fresh = result["fresh"]
    for node_type, title in (("ConsisIDFaceModelsLoader", "ConsisID Face Models Loader"),
                             ("ConsisIDGlobalExtractor", "Global Extractor")):
        assert fresh[node_type]["width"] - 60 >= len(title) * 8, (node_type, fresh[node_type])
    x, _, w, _ = fresh["ConsisIDFaceModelsLoader"]["badge"]
    assert x >= 30 + len("ConsisID Face Models Loader") * 8, "the badge starts right of the title's end"
    assert fresh["KSampler"]["width"] == 150


@pytest.mark.parametrize("mode", ["throw", "404"])
def test_route_unavailable_draws_nothing_and_breaks_nothing(mode):
    result = _run_node(_route_data(0), mode)
    assert result["clickInside"] is None, "no badge, no popup"
    for key in ("dit", "face", "sampler"):
        assert result[key]["badge"] is None and result[key]["ownDraws"] == 1
    assert result["texts"] == []


HIDDEN_INPUTS = os.path.join(REPO, "web", "js", "consisid_hidden_inputs.js")

HIDDEN_DRIVER = r"""
import { registered } from "./scripts/app.js";
await import("./extensions/consisid/js/consisid_hidden_inputs.js");
await import("./extensions/ComfyUI-ConsisID/js/consisid_hidden_inputs.js");  // the web folder served twice
const ext = registered[0];
async function makeType(name) {
  function NodeType() {}
  NodeType.prototype.removeInput = function (i) { this.inputs.splice(i, 1); };  // LGraphNode.removeInput
  NodeType.prototype.onNodeCreated = function () { this.ownCreated = true; };
  await ext.beforeRegisterNodeDef(NodeType, { name });
  return NodeType;
}
const SAMPLER_SLOTS = ["model", "text", "global_cond", "local_cond", "cache", "parallel", "size"];
const slots = (names) => names.map((name) => ({ name, type: name === "size" ? "CONSISID_SIZE" : "X", link: null }));
const names = (node) => node.inputs.map((i) => i.name);
const Sampler = await makeType("ConsisIDSampler");
const fresh = new Sampler();  // placed from the menu: the definition's slots, then onNodeCreated
fresh.inputs = slots(SAMPLER_SLOTS);
fresh.onNodeCreated();
const loaded = new Sampler();  // a saved workflow whose Sampler still lists the slot: configure sets it back
loaded.inputs = slots(SAMPLER_SLOTS);
loaded.onNodeCreated();
loaded.inputs = slots(SAMPLER_SLOTS);
loaded.onConfigure({});
const linked = new Sampler();
linked.inputs = [{ name: "size", type: "CONSISID_SIZE", link: 7 }];
linked.onConfigure({});
const Other = await makeType("SomeoneElsesSampler");
const other = new Other();
other.inputs = slots(["size"]);
other.onNodeCreated();
console.log(JSON.stringify({ registeredCount: registered.length, fresh: names(fresh), ownCreated: !!fresh.ownCreated,
  loaded: names(loaded), linked: names(linked), other: names(other), otherPatched: "onConfigure" in Other.prototype }));
"""


def _run_hidden_inputs() -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JS logic test needs it (apt-get install nodejs)")
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "scripts"))
        for name in ("consisid", "ComfyUI-ConsisID"):
            os.makedirs(os.path.join(tmp, "extensions", name, "js"))
            shutil.copy(HIDDEN_INPUTS, os.path.join(tmp, "extensions", name, "js", "consisid_hidden_inputs.js"))
        for name, text in (("scripts/app.js", APP_STUB), ("driver.mjs", HIDDEN_DRIVER)):
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        with open(os.path.join(tmp, "package.json"), "w", encoding="utf-8") as handle:
            json.dump({"type": "module"}, handle)
        done = subprocess.run([node, "driver.mjs"], cwd=tmp, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_samplers_never_wired_size_input_is_kept_off_the_canvas():
    """The V3 Sampler declares `size` (the size check's one-message carrier) as an optional input: its slot is removed
    when a Sampler is placed and when a saved workflow configures one; the Sampler's own slots, a linked slot and
    other packs' nodes are left alone."""
    result = _run_hidden_inputs()
    assert result["registeredCount"] == 1, "a second copy of the script registers nothing"
    assert result["fresh"] == ["model", "text", "global_cond", "local_cond", "cache", "parallel"]
    assert result["ownCreated"], "the node's own onNodeCreated still runs"
    assert result["loaded"] == result["fresh"]
    assert result["linked"] == ["size"]
    assert result["other"] == ["size"] and result["otherPatched"] is False


# ---------------------------------------------------------------- real ComfyUI + headless Chromium


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f} s")


class _Chrome:
    """Headless Chromium driven over the DevTools protocol with the pack's own websocket client."""

    def __init__(self, binary: str, profile: str):
        from consisid_core.batch.websocket import WebSocket

        port = _free_port()
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={port}",
             "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}", "--window-size=1800,1150", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_http(f"http://127.0.0.1:{port}/json/version", 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
            page = next(t for t in json.loads(response.read()) if t["type"] == "page")
        self.ws = WebSocket(page["webSocketDebuggerUrl"], timeout=10)
        self.ws.settimeout(60)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send_text(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = self.ws.recv_json()
            if message and message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if result.get("exceptionDetails"):
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.mark.comfyui
def test_badge_in_a_real_comfyui_canvas(tmp_path):
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        pytest.skip("COMFYUI_DIR is not set: the canvas badge test needs a real ComfyUI checkout")
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium (apt-get install chromium)")
    # the core-video variant needs no VideoHelperSuite, so no missing-node dialog covers the canvas
    from support.workflows import CORE_VIDEO_UI, UI_DIR

    workflow_path = str(UI_DIR / CORE_VIDEO_UI)
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    from support import comfy_server

    # --base-directory: the pack is linked, and settings and outputs are written, under tmp_path, not COMFYUI_DIR
    server = comfy_server.start(Path(comfy_dir), python, tmp_path / "comfyui_base", Path(REPO))
    port = server.port
    chrome = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/object_info/ConsisIDModelLoader", 240)
        chrome = _Chrome(browser, str(tmp_path / "profile"))
        chrome.call("Page.enable")
        chrome.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 120
        while not chrome.evaluate("!!(window.ConsisIDStatus && window.ConsisIDStatus.state.data && (window.app || window.comfyAPI))"):
            if time.monotonic() > deadline:
                raise TimeoutError("the ConsisID extension did not load its status")
            time.sleep(0.5)
        with open(workflow_path, encoding="utf-8") as handle:
            workflow = handle.read()
        badges = chrome.evaluate(
            "(async () => { const app = window.app ?? window.comfyAPI.app.app;"
            f" await app.loadGraphData({workflow}); app.graph.setDirtyCanvas(true, true);"
            " await new Promise(r => setTimeout(r, 1500));"
            " return app.graph._nodes.filter(n => ['ConsisIDModelLoader','ConsisIDFaceModelsLoader'].includes(n.type))"
            ".map(n => [n.type, window.ConsisIDStatus.badgeFor(n)?.text ?? null, n.__consisidBadge ?? null]); })()"
        )
        sampler_slots = chrome.evaluate(  # the size check's never-wired input (V3: an optional input) is off the canvas
            "(() => { const app = window.app ?? window.comfyAPI.app.app;"
            " const loaded = app.graph._nodes.find(n => n.type === 'ConsisIDSampler');"
            " const fresh = window.LiteGraph.createNode('ConsisIDSampler');"
            " return { loaded: loaded.inputs.map(i => i.name), fresh: fresh.inputs.map(i => i.name) }; })()"
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/object_info/ConsisIDSampler", timeout=10) as response:
            served = json.loads(response.read())["ConsisIDSampler"]["input"]
        chrome.evaluate(  # fit the whole graph in the window for the screenshot
            "(() => { const app = window.app ?? window.comfyAPI.app.app; const ns = app.graph._nodes;"
            " const x0 = Math.min(...ns.map(n => n.pos[0])), y0 = Math.min(...ns.map(n => n.pos[1] - 40));"
            " const x1 = Math.max(...ns.map(n => n.pos[0] + n.size[0])), y1 = Math.max(...ns.map(n => n.pos[1] + n.size[1]));"
            " const ds = app.canvas.ds, el = app.canvas.canvas, r = window.devicePixelRatio || 1;"
            " ds.scale = Math.max(0.7, Math.min((el.width / r - 160) / (x1 - x0), (el.height / r - 160) / (y1 - y0), 1));"
            " ds.offset = [110 / ds.scale - x0, 90 / ds.scale - y0]; app.canvas.setDirty(true, true); })()"
        )
        time.sleep(1.0)
        target = os.environ.get("CONSISID_SCREENSHOT", str(tmp_path / "consisid_badge.png"))
        with open(target, "wb") as handle:
            handle.write(base64.b64decode(chrome.call("Page.captureScreenshot", format="png")["data"]))
        popup = chrome.evaluate(  # click the face loader's badge: the list with target paths opens
            "(() => { const app = window.app ?? window.comfyAPI.app.app;"
            " const n = app.graph._nodes.find(n => n.type === 'ConsisIDFaceModelsLoader'); const r = n.__consisidBadgeRect;"
            " if (!r) return null; n.onMouseDown({}, [r[0] + 3, r[1] + 3]);"
            " const box = document.getElementById('consisid-status-popup'); return box ? box.innerText : null; })()"
        )
        time.sleep(0.5)
        with open(target.replace(".png", "_popup.png"), "wb") as handle:
            handle.write(base64.b64decode(chrome.call("Page.captureScreenshot", format="png")["data"]))
        print(f"badges: {badges}; screenshot: {target}")
        assert popup and "face_encoder" in popup, popup
        assert badges and all(b[1] for b in badges), badges
        assert all(b[2] == b[1] for b in badges), "the badge was drawn on the canvas"
        assert served["optional"]["size"][0] == "CONSISID_SIZE", "the V3 Sampler declares the input"
        for slots in sampler_slots.values():
            assert "model" in slots and "size" not in slots, sampler_slots
    finally:
        if chrome is not None:
            chrome.close()
        server.stop()
