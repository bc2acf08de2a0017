"""Make the canvas pictures the repository ships, with a real ComfyUI and headless Chromium: every template's
thumbnail (example_workflows/<name>.jpg: the whole graph after a real run, so previews, videos and scores are what
a run left on the canvas) and the README screenshot (workflows/consisid_basic.jpg, the VHS workflow as it opens in
a 1280x720 window), plus, in OUT for review: PNGs of each opened and each run workflow, the text each run's output
nodes showed (<name> (run outputs).json: the scores in the picture) and the template browser.
A picture with a completion notice left on screen or a note that scrolls is refused.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/its/python python tests/support/canvas_images.py OUT

The server runs on the CPU with the tiny random-weight test model (48x32, 9 frames, 3 steps) and random-weight
scoring models, so the loader badges report files that differ from the published ones, the videos are noise and
the scores mean nothing: thumbnails that show scores carry a label saying so (RANDOM_LABEL).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

THUMB_WINDOW = 1024  # square window the whole graph is drawn in, then halved
THUMB_SIZE = 512
RANDOM_LABEL = "a run of the tiny random-weight test model: its scores mean nothing"
SCORED_NODES = ("ConsisIDIdentityScore", "ConsisIDPickTake", "ConsisIDTakes")  # nodes that show scores
HIDE_INTERFACE_CSS = (
    "nav, .workflow-tabs-container, .p-breadcrumb, .actionbar-container, .minimap-main-container, "
    ".p-buttongroup.absolute, .comfyui-body-bottom { opacity: 0 !important; }"
)


def _fit_js(margin: int) -> str:
    """Fit the graph into the window (nothing else on screen) and draw text at any zoom."""
    return (
        "(async () => { const app = window.app ?? window.comfyAPI.app.app; const s = app.extensionManager.setting;"
        " await s.set('LiteGraph.Canvas.MinFontSizeForLOD', 1);"
        " await s.set('Comfy.Graph.CanvasInfo', false);"
        " const style = document.createElement('style');"
        f" style.textContent = {json.dumps(HIDE_INTERFACE_CSS)}; document.head.appendChild(style);"
        " const b = app.graph._nodes.map(n => n.getBounding());"
        " const x0 = Math.min(...b.map(r => r[0])), y0 = Math.min(...b.map(r => r[1]));"
        " const x1 = Math.max(...b.map(r => r[0] + r[2])), y1 = Math.max(...b.map(r => r[1] + r[3]));"
        f" const ds = app.canvas.ds; ds.scale = Math.min((innerWidth - {2 * margin}) / (x1 - x0),"
        f" (innerHeight - {2 * margin}) / (y1 - y0));"
        " ds.offset = [innerWidth / 2 / ds.scale - (x0 + x1) / 2, innerHeight / 2 / ds.scale - (y0 + y1) / 2];"
        " app.canvas.setDirty(true, true); await new Promise(r => setTimeout(r, 1500)); })()"
    )


def _load_js(workflow: str) -> str:
    return ("(async () => { const app = window.app ?? window.comfyAPI.app.app;"
            f" await app.loadGraphData({workflow}); await new Promise(r => setTimeout(r, 2000)); }})()")


async def _shoot(comfy_server, browser: str, url: str, profile: Path, window, workflow: str, fit: bool,
                 run: bool = False) -> tuple[bytes, dict]:
    """A screenshot of the workflow (after a run if `run`: then also the run's outputs, e.g. the scores shown)."""
    from support.canvas_runs import HIDE_NOTICE_JS, NOTE_JS, load_and_run_js

    result: dict = {}
    async with comfy_server.Browser(browser, profile, window=window) as page:
        await page.open_comfyui(url)
        if run:
            result = await page.evaluate(load_and_run_js(workflow))
            if result.get("status") != "success":
                raise RuntimeError(f"the run of the workflow failed: {result}")
        else:
            await page.evaluate(_load_js(workflow))
        if fit:
            await page.evaluate(_fit_js(margin=24))
        notices = await page.evaluate(HIDE_NOTICE_JS)
        scrolling = [n for n in await page.evaluate(NOTE_JS) if n["hidden_y"] > 0 or n["hidden_x"] > 0]
        if notices or scrolling:
            raise RuntimeError(f"not a clean picture: notices {notices} on screen, notes that scroll {scrolling}")
        shot = await page.call("Page.captureScreenshot", format="png")
    return base64.b64decode(shot["data"]), result


async def _browse_templates(comfy_server, browser: str, url: str, profile: Path, count: int) -> bytes:
    """A screenshot of ComfyUI's template browser showing this pack's `count` templates."""
    from support.canvas_runs import TEMPLATE_BROWSER_JS

    async with comfy_server.Browser(browser, profile, window=(1280, 1100)) as page:  # two rows of cards
        await page.open_comfyui(url)
        shown = await page.evaluate(TEMPLATE_BROWSER_JS % (count, count))
        if not shown:
            raise RuntimeError("the template browser did not show the ComfyUI-ConsisID templates")
        shot = await page.call("Page.captureScreenshot", format="png")
    return base64.b64decode(shot["data"])


def _shown_text(outputs: dict) -> dict:
    """node id -> the text each output node showed after the run (the Identity Score's and Pick Take's scores)."""
    return {node: output["text"] for node, output in (outputs or {}).items() if output.get("text")}


def _label(png: bytes, text: str) -> bytes:
    """The screenshot with `text` on a dark band along its bottom edge."""
    from PIL import Image, ImageDraw, ImageFont

    with Image.open(io.BytesIO(png)) as image:
        image = image.convert("RGB")
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=max(14, image.width // 40))
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        band = bottom - top + 16
        draw.rectangle((0, image.height - band, image.width, image.height), fill=(120, 20, 20))
        draw.text(((image.width - (right - left)) // 2, image.height - band + 8 - top), text, fill="white", font=font)
        out = io.BytesIO()
        image.save(out, "PNG")
    return out.getvalue()


def _jpeg(png: bytes, target: Path, size: tuple[int, int] | None = None, quality: int = 88) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image = image.convert("RGB")
        if size is not None:
            image = image.resize(size, Image.LANCZOS)
        image.save(target, "JPEG", quality=quality, optimize=True)


def make_images(out: Path) -> list[Path]:
    from support import comfy_server
    from support.canvas_view import WINDOW
    from support.node_graph import DEFAULT_PHOTO, FACE_FILE, MODEL_NAME, install_tiny_model
    from support.pack import REPO
    from support.workflows import BASIC_UI, UI_DIR, UI_TO_API

    from consisid_core.demo.metrics_models import write_eval_models

    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None or not os.environ.get("COMFYUI_DIR"):
        raise SystemExit("needs COMFYUI_DIR (a ComfyUI checkout) and Chromium")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as base:
        base = Path(base)
        install_tiny_model(base / "models" / "consisid" / MODEL_NAME)
        write_eval_models(base / "models")  # random-weight scoring models for the scores and takes templates
        (base / "input").mkdir()
        shutil.copy(DEFAULT_PHOTO, base / "input" / FACE_FILE)
        python = os.environ.get("COMFYUI_PYTHON", sys.executable)
        server = comfy_server.start(Path(os.environ["COMFYUI_DIR"]), python, base, REPO,
                                    extra_args=["--preview-method", "auto"])  # the Sampler shows its preview
        try:
            for name in UI_TO_API:
                workflow = (UI_DIR / name).read_text(encoding="utf-8")
                title = name[:-len(".json")]
                opened, _ = asyncio.run(_shoot(comfy_server, browser, server.url + "/", base / "p1", WINDOW, workflow,
                                               False))
                (out / f"{title} (opened).png").write_bytes(opened)
                written.append(out / f"{title} (opened).png")
                if name == BASIC_UI:
                    _jpeg(opened, REPO / "workflows" / "consisid_basic.jpg")
                    written.append(REPO / "workflows" / "consisid_basic.jpg")
                ran, result = asyncio.run(_shoot(comfy_server, browser, server.url + "/", base / "p2",
                                                 (THUMB_WINDOW, THUMB_WINDOW), workflow, True, run=True))
                if any(node in workflow for node in SCORED_NODES):
                    ran = _label(ran, RANDOM_LABEL)
                (out / f"{title} (after a run).png").write_bytes(ran)
                (out / f"{title} (run outputs).json").write_text(json.dumps(_shown_text(result.get("outputs")), indent=1))
                _jpeg(ran, UI_DIR / f"{title}.jpg", (THUMB_SIZE, THUMB_SIZE))
                written += [out / f"{title} (after a run).png", out / f"{title} (run outputs).json",
                            UI_DIR / f"{title}.jpg"]
            browser_shot = asyncio.run(_browse_templates(comfy_server, browser, server.url + "/", base / "p3",
                                                             len(UI_TO_API)))
            (out / "template browser.png").write_bytes(browser_shot)
            written.append(out / "template browser.png")
        finally:
            server.stop()
    return written


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]
    for path in make_images(Path(sys.argv[1] if len(sys.argv) > 1 else "canvas_images")):
        print("wrote", path)
