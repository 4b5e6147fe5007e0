// Node geometry in world units, shared by drawing and hit testing so both always agree:
// which widgets a node shows, where its sockets sit, how tall it is; plus the colours of
// types and how numbers are shown.

import { isWidgetConverted } from "./state.js";

export const TITLE_H = 30;
const SLOT_H = 22;
const SLOT_PAD = 6;
const WIDGET_H = 24;
const WIDGET_GAP = 4;
const MULTILINE_H = 84;
const PAD = 10;

const TYPE_COLORS = {
  MODEL: "#b39ddb", CLIP: "#ffd500", VAE: "#ff6e6e", CONDITIONING: "#ffa931", LATENT: "#ff9cf9",
  IMAGE: "#64b5f6", MASK: "#81c784", CONTROL_NET: "#00d78d", CLIP_VISION: "#a8dadc", CLIP_VISION_OUTPUT: "#ad7452",
  STYLE_MODEL: "#c2ffae", UPSCALE_MODEL: "#ddf3a4", SAMPLER: "#ecb4b4", SIGMAS: "#cdffcd", GUIDER: "#66ffff",
  NOISE: "#b0b0b0", INT: "#29699c", FLOAT: "#aab000", STRING: "#77bb66", BOOLEAN: "#cc6688", COMBO: "#8877aa",
  "*": "#a0a0a0",
};

export function typeColor(type) {
  if (TYPE_COLORS[type]) return TYPE_COLORS[type];
  let h = 0;
  for (const c of String(type)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360}, 55%, 62%)`;
}

/** The widgets a node shows, in order (converted widgets are hidden). */
function nodeWidgets(node, def, custom = null) {
  const out = [];
  if (!def) {
    for (const [name, value] of Object.entries(node.widgets_values || {})) {
      out.push({ name, kind: typeof value === "boolean" ? "toggle" : typeof value === "number" ? "number" : "text", spec: { name, type: typeof value === "number" ? "FLOAT" : "STRING", opts: {} }, readonly: true });
    }
    return out;
  }
  for (const spec of def.inputs) {
    if (!spec.widget || isWidgetConverted(node, spec.name)) continue;
    let kind = "text";
    const factory = custom ? custom(spec) : null;
    if (factory) {
      out.push({ name: spec.name, kind: "dom", spec, factory });
      continue;
    }
    if (spec.type === "INT" || spec.type === "FLOAT") kind = "number";
    else if (spec.type === "BOOLEAN") kind = "toggle";
    else if (spec.type === "COMBO") kind = "combo";
    else if (spec.type === "STRING" && spec.opts && spec.opts.multiline) kind = "multiline";
    out.push(spec.opts && spec.opts.markdown ? { name: spec.name, kind, spec, markdown: true } : { name: spec.name, kind, spec });
    if (node.properties && node.properties.control && spec.name in node.properties.control) {
      out.push({ name: `${spec.name}:control`, kind: "control", spec, target: spec.name });
    }
    if (spec.opts && spec.opts.image_upload) out.push({ name: `${spec.name}:upload`, kind: "upload", spec, target: spec.name });
  }
  return out;
}

/** Geometry of a node in world units, relative to node.pos (body top-left). */
export function layoutNode(node, def, runtime, custom = null) {
  const w = node.size[0];
  if (node.type === "Reroute") {
    return { w, h: node.size[1] || 26, widgets: [], image: null, text: null, reroute: true };
  }
  if (node.collapsed) return { w: Math.min(w, 200), h: 0, widgets: [], image: null, text: null, collapsed: true };
  const rows = Math.max(node.inputs.length, node.outputs.length);
  let y = SLOT_PAD + rows * SLOT_H + (rows ? 4 : 0);
  const widgets = [];
  for (const wd of nodeWidgets(node, def, custom)) {
    const h = wd.kind === "multiline" ? MULTILINE_H : wd.kind === "dom" ? 30 : WIDGET_H;
    widgets.push({ ...wd, x: PAD, y, w: w - 2 * PAD, h });
    y += h + WIDGET_GAP;
  }
  const out = runtime && runtime.outputs[node.id];
  const preview = runtime && runtime.previews[node.id];
  let image = null;
  let text = null;
  const upload = uploadWidget(def);
  const hasImages = preview || (out && out.images && out.images.length) || (upload && node.widgets_values[upload]);
  if (out && out.text && out.text.length) {
    const h = Math.min(200, 24 + 16 * Math.min(10, String(out.text.join("\n")).split("\n").length));
    text = { x: PAD, y: y + 2, w: w - 2 * PAD, h };
    y += h + 6;
  }
  const minH = y + 4;
  const stored = node.size[1] || 0;
  let h = Math.max(minH, stored);
  const md = widgets.find((wd) => wd.markdown); // a Markdown note's text fills its node (markdown.js)
  if (md && stored > minH) md.h += stored - minH;
  if (hasImages) {
    h = Math.max(h, minH + 200);
    image = { x: PAD, y: y + 2, w: w - 2 * PAD, h: h - y - 8 };
  }
  return { w, h, widgets, image, text, minH };
}

/** A node's box in world units as drawn, title bar included: [x0, y0, x1, y1]. */
export function nodeBox(node, lay) {
  const top = lay.reroute ? node.pos[1] : node.pos[1] - TITLE_H;
  return [node.pos[0], top, node.pos[0] + lay.w, node.pos[1] + lay.h];
}

/** The name of the widget that picks an input image (LoadImage's "image"), if any. */
export function uploadWidget(def) {
  if (!def) return null;
  if (def._upload === undefined) {
    const spec = def.inputs.find((i) => i.opts && i.opts.image_upload);
    def._upload = spec ? spec.name : null;
  }
  return def._upload;
}

/** "sub/name.png [input]" -> {filename, subfolder, type} for /view. */
export function inputImageRef(value) {
  let v = String(value);
  let type = "input";
  const m = v.match(/^(.*) \[(input|output|temp)\]$/);
  if (m) {
    v = m[1];
    type = m[2];
  }
  const cut = v.lastIndexOf("/");
  return { filename: cut >= 0 ? v.slice(cut + 1) : v, subfolder: cut >= 0 ? v.slice(0, cut) : "", type };
}

export function inputPos(node, slot, lay) {
  if (lay.reroute) return [node.pos[0], node.pos[1] + lay.h / 2];
  if (lay.collapsed) return [node.pos[0], node.pos[1] - TITLE_H / 2];
  return [node.pos[0], node.pos[1] + SLOT_PAD + SLOT_H * (slot + 0.5)];
}

export function outputPos(node, slot, lay) {
  if (lay.reroute) return [node.pos[0] + lay.w, node.pos[1] + lay.h / 2];
  if (lay.collapsed) return [node.pos[0] + lay.w, node.pos[1] - TITLE_H / 2];
  return [node.pos[0] + lay.w, node.pos[1] + SLOT_PAD + SLOT_H * (slot + 0.5)];
}

export function formatNumber(v, spec) {
  if (typeof v !== "number" || !Number.isFinite(v)) return String(v ?? "");
  if (spec.type === "INT") return String(Math.round(v));
  const step = spec.opts && spec.opts.round ? spec.opts.round : spec.opts && spec.opts.step ? spec.opts.step : 0.01;
  const decimals = Math.min(6, Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
  return v.toFixed(decimals);
}
