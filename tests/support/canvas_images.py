"""Make the canvas pictures the repository ships, with a real ComfyUI and headless Chromium: the two main
templates' thumbnails (example_workflows/<name>.jpg, the whole graph) and the README screenshot
(workflows/consisid_basic.jpg, the VHS workflow as it opens in a 1280x720 window), plus PNGs of each opened
workflow in OUT for review.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/its/python python tests/support/canvas_images.py OUT

The server runs on the CPU with the tiny test model, so the loader badges report files that differ from the
published ones and the sampler warns that the tiny checkpoint's native size is 48x32x9.
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


async def _shoot(comfy_server, browser: str, url: str, profile: Path, window, workflow: str, fit: bool) -> bytes:
    async with comfy_server.Browser(browser, profile, window=window) as page:
        await page.open_comfyui(url)
        await page.evaluate(_load_js(workflow))
        if fit:
            await page.evaluate(_fit_js(margin=24))
        shot = await page.call("Page.captureScreenshot", format="png")
    return base64.b64decode(shot["data"])


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
    from support.workflows import BASIC_UI, CORE_VIDEO_UI, UI_DIR, UI_TO_API

    canvas_thumbnails = (BASIC_UI, CORE_VIDEO_UI)  # other templates ship a picture of their own (e.g. a score chart)

    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None or not os.environ.get("COMFYUI_DIR"):
        raise SystemExit("needs COMFYUI_DIR (a ComfyUI checkout) and Chromium")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as base:
        base = Path(base)
        install_tiny_model(base / "models" / "consisid" / MODEL_NAME)
        (base / "input").mkdir()
        shutil.copy(DEFAULT_PHOTO, base / "input" / FACE_FILE)
        python = os.environ.get("COMFYUI_PYTHON", sys.executable)
        server = comfy_server.start(Path(os.environ["COMFYUI_DIR"]), python, base, REPO)
        try:
            for name in UI_TO_API:
                workflow = (UI_DIR / name).read_text(encoding="utf-8")
                title = name[:-len(".json")]
                opened = asyncio.run(_shoot(comfy_server, browser, server.url + "/", base / "p1", WINDOW, workflow, False))
                (out / f"{title} (opened).png").write_bytes(opened)
                written.append(out / f"{title} (opened).png")
                if name == BASIC_UI:
                    _jpeg(opened, REPO / "workflows" / "consisid_basic.jpg")
                    written.append(REPO / "workflows" / "consisid_basic.jpg")
                if name not in canvas_thumbnails:
                    continue
                whole = asyncio.run(_shoot(comfy_server, browser, server.url + "/", base / "p2",
                                           (THUMB_WINDOW, THUMB_WINDOW), workflow, True))
                _jpeg(whole, UI_DIR / f"{title}.jpg", (THUMB_SIZE, THUMB_SIZE))
                written.append(UI_DIR / f"{title}.jpg")
        finally:
            server.stop()
    return written


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]
    for path in make_images(Path(sys.argv[1] if len(sys.argv) > 1 else "canvas_images")):
        print("wrote", path)
