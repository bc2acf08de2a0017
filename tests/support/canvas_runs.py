"""Run a UI workflow inside the real ComfyUI page (headless Chromium) on the tiny random-weight test model, so the
canvas shows what a run leaves on it: the Sampler's preview, the video, the Identity Score's plot.

The workflow is loaded as shipped, its size and precision widgets set to the tiny model's (48x32, 9 frames,
3 steps, fp32), queued with the page's own Run (app.queuePrompt), and awaited through /queue and /history.
"""

from __future__ import annotations

import json

# widget name -> value for the tiny model (consisid_core.demo.video_models.TinySpec) on the CPU
TINY_WIDGETS = {"precision": "fp32", "memory_mode": "none", "width": 48, "height": 32, "num_frames": 9, "steps": 3}


def load_and_run_js(workflow: str, widgets: dict | None = None, timeout_s: int = 900) -> str:
    """JS: load `workflow`, set `widgets` by name on every node, Run, wait for the run; returns its status, errors
    and outputs (what each output node showed: the Identity Score's text, the videos)."""
    settings = json.dumps(TINY_WIDGETS if widgets is None else widgets)
    return (
        "(async () => { const app = window.app ?? window.comfyAPI.app.app; const api = window.comfyAPI.api.api;"
        " const sleep = (ms) => new Promise(r => setTimeout(r, ms));"
        f" await app.loadGraphData({workflow}); await sleep(1500);"
        f" const settings = {settings};"
        " for (const n of app.graph._nodes) for (const w of n.widgets ?? [])"
        "   if (w.name in settings) { w.value = settings[w.name]; w.callback?.(w.value); }"
        " const before = Object.keys(await (await api.fetchApi('/history')).json());"
        " await app.queuePrompt(0, 1);"
        f" const deadline = Date.now() + {timeout_s * 1000};"
        " while (Date.now() < deadline) { await sleep(1000);"
        "   const h = await (await api.fetchApi('/history')).json();"
        "   const fresh = Object.keys(h).filter(k => !before.includes(k));"
        "   if (fresh.length) { await sleep(3000); app.canvas.setDirty(true, true); await sleep(500);"
        "     const entry = h[fresh[0]]; return {status: entry.status?.status_str, outputs: entry.outputs,"
        "       messages: (entry.status?.messages ?? []).filter(m => m[0] === 'execution_error')}; } }"
        " return {status: 'timeout'}; })()"
    )


# The note's text box: how much of its text is out of view (scrolling needed) as the frontend draws it.
NOTE_JS = """(() => {
  return [...document.querySelectorAll('textarea')].filter((t) => t.value.includes('ConsisID'))
    .map((t) => ({hidden_y: t.scrollHeight - t.clientHeight, hidden_x: t.scrollWidth - t.clientWidth,
                  height: t.clientHeight, width: t.clientWidth}));
})()"""


# After a run frontend 1.35 shows a completion summary ("1 job completed") under the Run button for 6 s: a bordered
# box (QueueProgressOverlay) around one button labelled "Expand job queue". Hidden for screenshots by this rule (the
# Run button bar holds a button of that label too: it is kept).
NOTICE_SELECTOR = 'div:has(> div > button[aria-label="Expand job queue"]):not(:has(.actionbar))'
NOTICE_TEXT = r"\b\d+ jobs? (completed|failed)\b"
HIDE_NOTICE_JS = """(async () => {
  const style = document.createElement('style');
  style.textContent = %s + ' { display: none !important; }'; document.head.appendChild(style);
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const notice = new RegExp(%s);
  return [...document.querySelectorAll('body *')]
    .filter((e) => notice.test(e.textContent) && ![...e.children].some((c) => notice.test(c.textContent)))
    .filter((e) => e.checkVisibility({opacityProperty: true, visibilityProperty: true}))
    .map((e) => e.textContent.trim());
})()""" % (json.dumps(NOTICE_SELECTOR), json.dumps(NOTICE_TEXT))  # -> the notices still visible (none expected)

# Open ComfyUI's template browser on this pack's category and wait for the pictures of its cards; true when shown.
# Format it with the number of templates, twice.
TEMPLATE_BROWSER_JS = """(async () => {
  const app = window.app ?? window.comfyAPI.app.app; const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  await app.extensionManager.command.execute('Comfy.BrowseTemplates');
  const leaf = (text) => [...document.querySelectorAll('[role=dialog] *')]
    .find((e) => e.children.length === 0 && e.textContent.trim() === text);
  for (let i = 0; i < 60 && !leaf('ComfyUI-ConsisID'); i++) await sleep(500);
  leaf('ComfyUI-ConsisID')?.click();
  const images = () => [...document.querySelectorAll('[role=dialog] img')]
    .filter((i) => i.getBoundingClientRect().width > 0 && i.complete && i.naturalWidth > 0);  // (blob: URLs)
  for (let i = 0; i < 60 && images().length < %d; i++) await sleep(500);
  await sleep(1000);
  return images().length >= %d;
})()"""
