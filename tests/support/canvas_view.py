"""Where ComfyUI's canvas (frontend 1.35, shipped with ComfyUI 0.8) draws a UI workflow: the saved view
(extra.ds) that shows every node on open, and the screen rectangles to check it with.

LiteGraph draws graph point p at screen (p + ds.offset) * ds.scale on a canvas that fills the window; the
left sidebar and the top bar (workflow tabs) lie over it. A node's title bar sits above its `pos`.
"""

from __future__ import annotations

import json
import math

WINDOW = (1280, 720)  # a typical laptop browser window, CSS px
SIDEBAR_WIDTH = 59  # the left icon bar, measured in frontend 1.35.9 (.side-tool-bar-container)
TOP_HEIGHT = 90  # the workflow tabs bar (38 px) and, floating below it, the workflow name and the Run buttons
# What else lies over the canvas in a 1280x720 window (frontend 1.35.9, measured; PROBE_JS re-measures it live)
INTERFACE = {
    "minimap": (1023, 462, 1276, 662),
    "zoom buttons": (1022, 666, 1276, 716),
}
NODE_TITLE_HEIGHT = 30  # LiteGraph.NODE_TITLE_HEIGHT
MARGIN = 16  # free canvas kept around the graph
# Below this zoom the frontend draws nodes without their text: min_font_size_for_lod (8 px) / NODE_TEXT_SIZE (14)
MIN_SCALE = 8 / 14
MAX_SCALE = 1.0

Rect = tuple[float, float, float, float]  # left, top, right, bottom


def visible_area(window: tuple[int, int] = WINDOW) -> Rect:
    """The part of the canvas right of the sidebar and below the top bar and its buttons, in screen px."""
    return (SIDEBAR_WIDTH, TOP_HEIGHT, window[0], window[1])


def node_rects(ui: dict) -> list[Rect]:
    """Each node's rectangle in graph units, title bar included."""
    return [(n["pos"][0], n["pos"][1] - NODE_TITLE_HEIGHT, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
            for n in ui["nodes"]]


def graph_bounds(ui: dict) -> Rect:
    rects = node_rects(ui)
    return (min(r[0] for r in rects), min(r[1] for r in rects), max(r[2] for r in rects), max(r[3] for r in rects))


def to_screen(rect: Rect, ds: dict) -> Rect:
    (ox, oy), scale = ds["offset"], ds["scale"]
    return ((rect[0] + ox) * scale, (rect[1] + oy) * scale, (rect[2] + ox) * scale, (rect[3] + oy) * scale)


def fit_view(ui: dict, window: tuple[int, int] = WINDOW) -> dict:
    """The largest view (at most 1:1) that shows every node inside visible_area() with MARGIN around, centred."""
    left, top, right, bottom = visible_area(window)
    x0, y0, x1, y1 = graph_bounds(ui)
    scale = min((right - left - 2 * MARGIN) / (x1 - x0), (bottom - top - 2 * MARGIN) / (y1 - y0), MAX_SCALE)
    scale = math.floor(scale * 100) / 100
    offset_x = ((left + right) / 2) / scale - (x0 + x1) / 2
    offset_y = ((top + bottom) / 2) / scale - (y0 + y1) / 2
    return {"scale": scale, "offset": [round(offset_x, 1), round(offset_y, 1)]}


def outside(rect: Rect, area: Rect) -> bool:
    return rect[0] < area[0] or rect[1] < area[1] or rect[2] > area[2] or rect[3] > area[3]


def intersects(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# Run in the ComfyUI page after a workflow is loaded: the view, each node's drawn rectangle on screen (from the
# node's real size in the frontend) and the rectangles of the interface lying over the canvas.
OVERLAYS = {
    "sidebar": ".side-tool-bar-container",
    "top bar": ".workflow-tabs-container",
    "workflow name": ".p-breadcrumb-item",
    "run button bar": ".actionbar-container",
    "minimap": ".minimap-main-container",
    "zoom buttons": ".p-buttongroup.absolute",
    "dialog": ".p-dialog-mask",
}
PROBE_JS = """(() => {
  const app = window.app ?? window.comfyAPI.app.app;
  const ds = app.canvas.ds;
  const screen = (x, y) => [(x + ds.offset[0]) * ds.scale, (y + ds.offset[1]) * ds.scale];
  const nodes = app.graph._nodes.map((n) => {
    const b = n.getBounding();
    return [n.type, ...screen(b[0], b[1]), ...screen(b[0] + b[2], b[1] + b[3])];
  });
  const overlays = {};
  for (const [name, selector] of Object.entries(%s)) {
    overlays[name] = [...document.querySelectorAll(selector)].map((e) => e.getBoundingClientRect())
      .filter((r) => r.width > 0 && r.height > 0).map((r) => [r.left, r.top, r.right, r.bottom]);
  }
  return {ds: {scale: ds.scale, offset: [...ds.offset]}, window: [innerWidth, innerHeight], nodes, overlays,
          lowQuality: app.canvas.low_quality};
})()""" % json.dumps(OVERLAYS)


def hidden_nodes(probe: dict) -> list[str]:
    """Nodes of a PROBE_JS result (sized as the frontend draws them) that are not fully on screen, lie under part of
    the interface or overlap another node."""
    width, height = probe["window"]
    found = ["every node: drawn without text at this zoom"] if probe.get("lowQuality") else []
    for node_type, *rect in probe["nodes"]:
        if outside(rect, (0, 0, width, height)):
            found.append(f"{node_type} {[round(v) for v in rect]} leaves the {width}x{height} window")
        for name, rects in probe["overlays"].items():
            if any(intersects(rect, r) for r in rects):
                found.append(f"{node_type} {[round(v) for v in rect]} lies under the {name}")
    for index, (node_type, *rect) in enumerate(probe["nodes"]):
        for other_type, *other in probe["nodes"][index + 1:]:
            if intersects(rect, other):
                found.append(f"{node_type} {[round(v) for v in rect]} overlaps {other_type} {[round(v) for v in other]}")
    return found
