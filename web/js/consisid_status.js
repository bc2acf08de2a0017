// ConsisID model status in the canvas: a badge on the ConsisID loaders ("all files found" / "N missing",
// click for the list with exact target paths) and a warning on the sampler when width/height/frames
// differ from the loaded checkpoint's native values. Data comes from GET /consisid/models.
// Dependency-free; when the route is unavailable nothing is drawn and nothing breaks.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const ROUTE = "/consisid/models";
const DIT_LOADER = "ConsisIDModelLoader";
const FACE_LOADER = "ConsisIDFaceModelsLoader";
const SAMPLER = "ConsisIDSampler";
// Which components each loader needs (the DiT loader does not read face_encoder/, and vice versa).
const LOADER_COMPONENTS = {
  [DIT_LOADER]: ["pipeline", "scheduler", "transformer", "vae", "text_encoder", "tokenizer"],
  [FACE_LOADER]: ["face_encoder", "antelopev2"],
};
const COLORS = { ok: "#2e7d32", bad: "#c62828", warn: "#ef6c00", text: "#ffffff" };
// The popup is wide enough for a status message on one or two lines (not a ~90 px column wrapping word by word).
const POPUP_WIDTH = "min(900px,92vw)";
const STATUS_COLUMN = "min-width:260px;max-width:45%";
// While the popup is open, ComfyUI's node tooltip (shown on hover over the title bar) would cover its header.
const TOOLTIP_HIDE_CSS = ".node-tooltip{display:none !important}";
// Room a loader's title bar keeps for the badge ("all files found", "12 file problems": bold 11px + padding).
const BADGE_ROOM = 118;
const TITLE_FONT = "14px Arial"; // LiteGraph.NODE_TEXT_SIZE px, fallback font

const state = { data: null, error: null, loading: null };

async function refresh() {
  if (state.loading) return state.loading;
  state.loading = (async () => {
    try {
      const response = await api.fetchApi(ROUTE, { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      state.data = await response.json();
      state.error = null;
    } catch (err) {
      state.data = null;
      state.error = String(err);
    } finally {
      state.loading = null;
      app.graph?.setDirtyCanvas?.(true, true);
    }
    return state.data;
  })();
  return state.loading;
}

function widgetValue(node, name) {
  const widget = node.widgets?.find((w) => w.name === name);
  return widget ? widget.value : undefined;
}

function modelEntry(name) {
  const models = state.data?.models ?? [];
  return models.find((m) => m.name === name) ?? (models.length === 1 ? models[0] : undefined);
}

// Badge for a loader node: {text, color, files} or null when there is nothing to show.
function loaderBadge(node) {
  if (!state.data) return null;
  const model = modelEntry(widgetValue(node, "model"));
  if (!model) return { text: "no model folder", color: COLORS.bad, files: [], model: null };
  const wanted = LOADER_COMPONENTS[node.comfyClass ?? node.type] ?? [];
  const files = model.files.filter((f) => wanted.includes(f.component));
  const problems = files.filter((f) => f.problem);
  if (!model.exists) return { text: "folder missing", color: COLORS.bad, files: problems, model };
  if (problems.length === 0) return { text: "all files found", color: COLORS.ok, files: [], model };
  const allMissing = problems.every((f) => f.status === "missing");
  const text = allMissing ? `${problems.length} missing` : `${problems.length} file problem${problems.length > 1 ? "s" : ""}`;
  return { text, color: COLORS.bad, files: problems, model };
}

// The model folder the sampler will run on: the loader wired to its `model` input, else the only loader.
function samplerModel(node) {
  const slot = node.inputs?.findIndex((i) => i.name === "model") ?? -1;
  let loader = slot >= 0 && node.getInputNode ? node.getInputNode(slot) : null;
  if (!loader || (loader.comfyClass ?? loader.type) !== DIT_LOADER) {
    const loaders = (app.graph?._nodes ?? []).filter((n) => (n.comfyClass ?? n.type) === DIT_LOADER);
    loader = loaders.length === 1 ? loaders[0] : null;
  }
  return loader ? modelEntry(widgetValue(loader, "model")) : modelEntry(undefined);
}

function samplerBadge(node) {
  const native = samplerModel(node)?.native;
  if (!native) return null;
  const diffs = [];
  for (const [key, label] of [["width", "width"], ["height", "height"], ["num_frames", "frames"]]) {
    const value = widgetValue(node, key);
    if (value !== undefined && Number(value) !== Number(native[key])) diffs.push(`${label} ${value}≠${native[key]}`);
  }
  if (!diffs.length) return null;
  return {
    text: `⚠ native ${native.width}x${native.height}x${native.num_frames}`,
    color: COLORS.warn,
    warning: `This checkpoint was trained for ${native.width}x${native.height}, ${native.num_frames} frames: ${diffs.join(", ")}.`,
  };
}

function badgeFor(node) {
  const type = node.comfyClass ?? node.type;
  if (type === SAMPLER) return samplerBadge(node);
  if (type in LOADER_COMPONENTS) return loaderBadge(node);
  return null;
}

function drawBadge(node, ctx, badge) {
  const titleHeight = globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
  ctx.save();
  ctx.font = "bold 11px sans-serif";
  const width = ctx.measureText(badge.text).width + 12;
  const height = 16;
  const x = node.size[0] - width - 6;
  const y = -titleHeight + (titleHeight - height) / 2;
  ctx.fillStyle = badge.color;
  ctx.beginPath();
  if (ctx.roundRect) ctx.roundRect(x, y, width, height, 8);
  else ctx.rect(x, y, width, height);
  ctx.fill();
  ctx.fillStyle = COLORS.text;
  ctx.textBaseline = "middle";
  ctx.fillText(badge.text, x + 6, y + height / 2 + 0.5);
  ctx.restore();
  node.__consisidBadgeRect = [x, y, width, height];
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function closePopup() {
  document.getElementById("consisid-status-popup")?.remove();
  document.getElementById("consisid-status-popup-style")?.remove();
}

function hideTooltips() {
  const style = document.createElement("style");
  style.id = "consisid-status-popup-style";
  style.textContent = TOOLTIP_HIDE_CSS;
  (document.head ?? document.body).appendChild(style);
}

function showPopup(node, badge) {
  closePopup();
  const box = document.createElement("div");
  box.id = "consisid-status-popup";
  box.style.cssText =
    `position:fixed;z-index:100000;left:50%;top:10%;transform:translateX(-50%);width:${POPUP_WIDTH};` +
    "max-height:75vh;overflow:auto;background:#222;color:#eee;border:1px solid #555;border-radius:8px;" +
    "padding:12px 16px;font:12px/1.45 monospace;box-shadow:0 6px 24px rgba(0,0,0,.5)";
  let html = `<div style="font:bold 14px sans-serif;margin-bottom:8px">ConsisID — ${escapeHtml(node.title ?? node.type)}</div>`;
  if (badge.warning) {
    html += `<div>${escapeHtml(badge.warning)}</div><div style="margin-top:6px">Other sizes are refused or give poor results with this checkpoint.</div>`;
  } else if (!badge.model) {
    const dirs = (state.data?.consisid_dirs ?? []).map(escapeHtml).join("<br>");
    html += `<div>No model folder found. Put the ConsisID-preview folder in:</div><div style="margin:6px 0">${dirs}</div>`;
  } else if (!badge.files.length) {
    html += `<div>Every file this node needs is in ${escapeHtml(badge.model.path)}.</div>`;
  } else {
    html += `<div>Model folder: ${escapeHtml(badge.model.path)}</div><table style="border-collapse:collapse;margin-top:8px">`;
    for (const f of badge.files) {
      // f.label is the CLI's word for the status (consisid_core.model_status LABELS): MISSING, WRONG SIZE...
      const why = f.message && f.status !== "missing" ? `${f.label}: ${f.message}` : f.label;
      html +=
        `<tr><td style="color:#ff8a80;padding:2px 12px 2px 0;vertical-align:top;${STATUS_COLUMN}">${escapeHtml(why)}</td>` +
        `<td style="padding:2px 0">${escapeHtml(f.target)}<br><span style="color:#90caf9">${escapeHtml(f.source?.download_url ?? "")}</span></td></tr>`;
    }
    html += "</table>";
  }
  html += `<div style="margin-top:10px;text-align:right"><button id="consisid-status-refresh">Check again</button> <button id="consisid-status-close">Close</button></div>`;
  box.innerHTML = html;
  hideTooltips();
  document.body.appendChild(box);
  box.querySelector("#consisid-status-close").onclick = closePopup;
  box.querySelector("#consisid-status-refresh").onclick = async () => {
    await refresh();
    const again = badgeFor(node);
    if (again) showPopup(node, again);
    else closePopup();
  };
}

function inBadge(node, pos) {
  const rect = node.__consisidBadgeRect;
  return rect && pos[0] >= rect[0] && pos[0] <= rect[0] + rect[2] && pos[1] >= rect[1] && pos[1] <= rect[1] + rect[3];
}

// Width of a node title in the font the canvas draws it with (an estimate where no canvas is available).
function titleWidth(node, title) {
  try {
    const ctx = globalThis.document?.createElement("canvas").getContext("2d");
    if (ctx) {
      const lg = globalThis.LiteGraph;
      ctx.font = node.titleFontStyle ?? (lg ? `${lg.NODE_TEXT_SIZE ?? 14}px ${lg.NODE_FONT ?? "Arial"}` : TITLE_FONT);
      return ctx.measureText(title).width;
    }
  } catch {
    // no canvas: estimate below
  }
  return title.length * 8;
}

// A node width that shows the whole title (and, right of it, the badge where the node has one): the canvas
// sizes a freshly placed node from its slots and widgets only, and cuts a title longer than the width less two
// title heights ("Global Extr...") while the badge covers the end of a long one ("ConsisID Face Models Loader").
function titleRoom(node, badge) {
  const titleHeight = globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
  const title = String(node.title ?? node.type ?? "");
  return Math.ceil(2 * titleHeight + titleWidth(node, title) + 4 + (badge ? BADGE_ROOM : 0));
}

// Widen a node when it is created (placed fresh); a loaded workflow then sets the size it saved.
function keepTitleRoom(nodeType, badge) {
  const onNodeCreated = nodeType.prototype.onNodeCreated;
  nodeType.prototype.onNodeCreated = function () {
    const result = onNodeCreated?.apply(this, arguments);
    if (Array.isArray(this.size) || this.size?.length === 2) this.size[0] = Math.max(this.size[0], titleRoom(this, badge));
    return result;
  };
}

function decorate(nodeType) {
  const onDrawForeground = nodeType.prototype.onDrawForeground;
  nodeType.prototype.onDrawForeground = function (ctx) {
    const result = onDrawForeground?.apply(this, arguments);
    try {
      const badge = badgeFor(this);
      this.__consisidBadge = badge ? badge.text : null;
      if (badge && !this.flags?.collapsed) drawBadge(this, ctx, badge);
      else this.__consisidBadgeRect = null;
    } catch (err) {
      console.warn("ConsisID status badge:", err);
    }
    return result;
  };
  const onMouseDown = nodeType.prototype.onMouseDown;
  nodeType.prototype.onMouseDown = function (event, pos) {
    if (inBadge(this, pos)) {
      const badge = badgeFor(this);
      if (badge) {
        showPopup(this, badge);
        return true;
      }
    }
    return onMouseDown?.apply(this, arguments);
  };
}

// The pack's web folder can be served twice (pyproject `web` + WEB_DIRECTORY under two names): register once.
// globalThis.ConsisIDStatus is also the handle for scripts and tests (the browser test reads badgeFor).
if (!globalThis.ConsisIDStatus) {
  globalThis.ConsisIDStatus = { refresh, badgeFor, state, titleRoom };
  app.registerExtension({
    name: "ConsisID.ModelStatus",
    async setup() {
      await refresh();
    },
    async beforeRegisterNodeDef(nodeType, nodeData) {
      const badge = nodeData?.name === SAMPLER || nodeData?.name in LOADER_COMPONENTS;
      if (badge) decorate(nodeType);
      if (String(nodeData?.name ?? "").startsWith("ConsisID")) keepTitleRoom(nodeType, badge);
    },
  });
}
