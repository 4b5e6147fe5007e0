// Canvas2D renderer: node layout (shared with hit testing), drawing with viewport culling,
// level of detail when zoomed out, and a minimap.

import { MODE_BYPASS, MODE_MUTED, effectiveOutputType, getNode, isWidgetConverted, linkInto, typesCompatible } from "./state.js";

export const TITLE_H = 30;
export const SLOT_H = 22;
export const SLOT_PAD = 6;
export const WIDGET_H = 24;
export const WIDGET_GAP = 4;
export const MULTILINE_H = 84;
export const PAD = 10;

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
export function nodeWidgets(node, def, custom = null) {
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
    out.push({ name: spec.name, kind, spec });
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
  if (hasImages) {
    h = Math.max(h, minH + 200);
    image = { x: PAD, y: y + 2, w: w - 2 * PAD, h: h - y - 8 };
  }
  return { w, h, widgets, image, text, minH };
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

function roundRect(ctx, x, y, w, h, r) {
  ctx.beginPath();
  if (ctx.roundRect) ctx.roundRect(x, y, w, h, r);
  else ctx.rect(x, y, w, h);
}

export class Renderer {
  constructor(app, canvas, minimap) {
    this.app = app;
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.minimap = minimap;
    this.mctx = minimap ? minimap.getContext("2d") : null;
    this.dirty = true;
    this.frameScheduled = false;
    this.images = new Map();
    this.layouts = new Map();
    this.lastDrawMs = 0;
    this.drawTimes = [];
    this.visibleCount = 0;
    this.truncCache = new Map();
    this.resize();
    window.addEventListener("resize", () => {
      this.resize();
      this.requestRender();
    });
  }

  get ds() {
    return this.app.graph.extra.ds;
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const rect = this.canvas.getBoundingClientRect();
    this.width = Math.max(1, rect.width);
    this.height = Math.max(1, rect.height);
    this.dpr = dpr;
    this.canvas.width = Math.round(this.width * dpr);
    this.canvas.height = Math.round(this.height * dpr);
    if (this.minimap) {
      this.minimap.width = this.minimap.clientWidth * dpr;
      this.minimap.height = this.minimap.clientHeight * dpr;
    }
  }

  toWorld(sx, sy) {
    const { scale, offset } = this.ds;
    return [sx / scale - offset[0], sy / scale - offset[1]];
  }

  toScreen(wx, wy) {
    const { scale, offset } = this.ds;
    return [(wx + offset[0]) * scale, (wy + offset[1]) * scale];
  }

  requestRender() {
    this.dirty = true;
    if (this.frameScheduled) return;
    this.frameScheduled = true;
    requestAnimationFrame(() => {
      this.frameScheduled = false;
      if (this.dirty) this.draw();
    });
  }

  layout(node) {
    const app = this.app;
    return layoutNode(node, app.defFor(node), app.runtime, app.extHost ? (spec) => app.customWidget(spec) : null);
  }

  image(url) {
    let img = this.images.get(url);
    if (!img) {
      img = new Image();
      img.onload = () => this.requestRender();
      img.onerror = () => {
        img.failed = true;
        this.requestRender();
      };
      img.src = url;
      this.images.set(url, img);
      if (this.images.size > 400) this.images.delete(this.images.keys().next().value);
    }
    return img;
  }

  truncate(ctx, text, maxW) {
    const key = `${ctx.font}|${maxW | 0}|${text}`;
    let v = this.truncCache.get(key);
    if (v !== undefined) return v;
    v = text;
    if (ctx.measureText(text).width > maxW) {
      let lo = 0, hi = text.length;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (ctx.measureText(text.slice(0, mid) + "…").width <= maxW) lo = mid;
        else hi = mid - 1;
      }
      v = text.slice(0, lo) + "…";
    }
    if (this.truncCache.size > 5000) this.truncCache.clear();
    this.truncCache.set(key, v);
    return v;
  }

  draw() {
    const t0 = performance.now();
    this.dirty = false;
    const { ctx, app } = this;
    const graph = app.graph;
    const { scale, offset } = this.ds;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = "#1c1d21";
    ctx.fillRect(0, 0, this.width, this.height);
    const [vx0, vy0] = this.toWorld(0, 0);
    const [vx1, vy1] = this.toWorld(this.width, this.height);
    this.view = [vx0, vy0, vx1, vy1];
    ctx.setTransform(this.dpr * scale, 0, 0, this.dpr * scale, this.dpr * scale * offset[0], this.dpr * scale * offset[1]);
    this.drawGrid(vx0, vy0, vx1, vy1, scale);
    const lowDetail = scale < 0.45;

    // layouts of all nodes (cheap), visibility per node
    this.layouts = new Map();
    const visible = [];
    for (const node of graph.nodes) {
      const lay = this.layout(node);
      this.layouts.set(node.id, lay);
      const top = node.pos[1] - (lay.reroute ? 0 : TITLE_H);
      if (node.pos[0] > vx1 || node.pos[0] + lay.w < vx0 || top > vy1 || node.pos[1] + lay.h < vy0) continue;
      visible.push(node);
    }
    this.visibleCount = visible.length;

    for (const group of graph.groups) this.drawGroup(group, lowDetail);
    this.drawLinks(lowDetail);
    const sel = app.selection;
    for (const node of visible) this.drawNode(node, this.layouts.get(node.id), sel.has(node.id), lowDetail);
    app.interaction && app.interaction.drawOverlay(ctx, scale);
    if (app.extHost) this.syncDomWidgets(visible, lowDetail);
    this.drawMinimap();
    this.lastDrawMs = performance.now() - t0;
    this.drawTimes.push(this.lastDrawMs);
    if (this.drawTimes.length > 600) this.drawTimes.shift();
  }

  /** Place web-extension widgets (DOM elements) over the visible nodes; hide the rest. */
  syncDomWidgets(visible, lowDetail) {
    const app = this.app;
    const tabId = app.tab.id;
    const scale = this.ds.scale;
    this.dom = this.dom || new Map();
    if (!this.domLayer) {
      this.domLayer = document.createElement("div");
      this.domLayer.id = "dom-widgets";
      this.canvas.parentElement.appendChild(this.domLayer);
    }
    const seen = new Set();
    if (!lowDetail) {
      for (const node of visible) {
        const lay = this.layouts.get(node.id);
        for (const wd of lay.widgets) {
          if (wd.kind !== "dom") continue;
          const key = `${tabId}:${node.id}:${wd.name}`;
          let w = this.dom.get(key);
          if (!w) {
            const made = wd.factory(node, wd.name, { ...(wd.spec.opts || {}), type: wd.spec.type });
            if (!made || !made.element) continue;
            w = { element: made.element, getValue: made.getValue, setValue: made.setValue, nodeId: node.id, name: wd.name, tabId, last: undefined };
            made.element.classList.add("dom-widget");
            made.element.dataset.node = String(node.id);
            made.element.dataset.widget = wd.name;
            const entry = w;
            made.element.addEventListener("change", () => {
              const n = getNode(app.graph, entry.nodeId);
              if (!n || app.tab.id !== entry.tabId) return;
              const v = entry.getValue();
              if (n.widgets_values[entry.name] === v) return;
              entry.last = v;
              app.cmd(`Set ${entry.name}`, () => {
                n.widgets_values[entry.name] = v;
              });
            });
            this.domLayer.appendChild(made.element);
            this.dom.set(key, w);
          }
          const v = node.widgets_values[wd.name];
          if (v !== w.last) {
            w.last = v;
            try {
              if (v !== undefined) w.setValue(v);
            } catch (e) {
              console.error(e);
            }
          }
          const [sx, sy] = this.toScreen(node.pos[0] + wd.x, node.pos[1] + wd.y);
          Object.assign(w.element.style, {
            position: "absolute", left: `${sx}px`, top: `${sy}px`, width: `${wd.w * scale}px`, height: `${wd.h * scale}px`, display: "",
          });
          seen.add(key);
        }
      }
    }
    for (const [key, w] of this.dom) {
      if (seen.has(key)) continue;
      w.element.style.display = "none";
      const tab = app.tabs.find((t) => t.id === w.tabId);
      if (!tab || !getNode(tab.graph, w.nodeId)) {
        w.element.remove();
        this.dom.delete(key);
      }
    }
  }

  drawGrid(x0, y0, x1, y1, scale) {
    if (scale < 0.35) return;
    const { ctx } = this;
    const step = 50;
    ctx.strokeStyle = "rgba(255,255,255,0.045)";
    ctx.lineWidth = 1 / scale;
    ctx.beginPath();
    for (let x = Math.floor(x0 / step) * step; x < x1; x += step) {
      ctx.moveTo(x, y0);
      ctx.lineTo(x, y1);
    }
    for (let y = Math.floor(y0 / step) * step; y < y1; y += step) {
      ctx.moveTo(x0, y);
      ctx.lineTo(x1, y);
    }
    ctx.stroke();
  }

  drawGroup(group, lowDetail) {
    const { ctx } = this;
    const [x, y, w, h] = group.bounding;
    const [vx0, vy0, vx1, vy1] = this.view;
    if (x > vx1 || x + w < vx0 || y > vy1 || y + h < vy0) return;
    const color = group.color || "#3f789e";
    ctx.globalAlpha = 0.22;
    ctx.fillStyle = color;
    roundRect(ctx, x, y, w, h, 6);
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.strokeStyle = color;
    ctx.lineWidth = this.app.selectedGroup === group ? 3 : 1.5;
    ctx.stroke();
    if (!lowDetail) {
      ctx.fillStyle = "#e8e8e8";
      ctx.font = "bold 20px system-ui, sans-serif";
      ctx.textBaseline = "middle";
      ctx.fillText(group.title, x + 10, y + 18);
      // resize grip
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.moveTo(x + w, y + h);
      ctx.lineTo(x + w - 14, y + h);
      ctx.lineTo(x + w, y + h - 14);
      ctx.fill();
    }
  }

  drawLinks(lowDetail) {
    const { ctx, app } = this;
    const graph = app.graph;
    const [vx0, vy0, vx1, vy1] = this.view;
    ctx.lineWidth = lowDetail ? 2 / this.ds.scale : 3;
    const byColor = new Map();
    for (const link of graph.links) {
      const o = getNode(graph, link.origin_id);
      const t = getNode(graph, link.target_id);
      if (!o || !t) continue;
      const lo = this.layouts.get(o.id);
      const lt = this.layouts.get(t.id);
      const [x1, y1] = outputPos(o, link.origin_slot, lo);
      const [x2, y2] = inputPos(t, link.target_slot, lt);
      const dx = Math.max(40, Math.abs(x2 - x1) * 0.5);
      const minX = Math.min(x1, x2) - 10, maxX = Math.max(x1, x2) + 10;
      const minY = Math.min(y1, y2) - 10, maxY = Math.max(y1, y2) + 10;
      if (maxX < vx0 || minX > vx1 || maxY < vy0 || minY > vy1) continue;
      const muted = o.mode === MODE_MUTED || t.mode === MODE_MUTED;
      const color = muted ? "#555" : typeColor(link.type);
      // links of the selected nodes are drawn wider, on top
      const key = app.selection.has(o.id) || app.selection.has(t.id) ? `${color}|sel` : color;
      if (!byColor.has(key)) byColor.set(key, []);
      byColor.get(key).push([x1, y1, x2, y2, dx]);
    }
    const baseWidth = ctx.lineWidth;
    const ordered = [...byColor].sort((a, b) => a[0].endsWith("|sel") - b[0].endsWith("|sel"));
    for (const [key, segs] of ordered) {
      const [color, sel] = key.split("|");
      ctx.strokeStyle = color;
      ctx.lineWidth = sel ? baseWidth * 1.8 : baseWidth;
      ctx.beginPath();
      for (const [x1, y1, x2, y2, dx] of segs) {
        ctx.moveTo(x1, y1);
        if (lowDetail) ctx.lineTo(x2, y2);
        else ctx.bezierCurveTo(x1 + dx, y1, x2 - dx, y2, x2, y2);
      }
      ctx.stroke();
    }
  }

  drawNode(node, lay, selected, lowDetail) {
    const { ctx, app } = this;
    const rt = app.runtime;
    const [x, y] = node.pos;
    const { w, h } = lay;
    const def = app.defFor(node);
    const error = rt.errors[node.id];
    const executing = rt.executing === node.id || rt.executing === String(node.id);
    ctx.globalAlpha = node.mode === MODE_MUTED ? 0.45 : 1;

    if (lay.reroute) {
      const t = effectiveOutputType(app.graph, node, 0);
      roundRect(ctx, x, y, w, h, h / 2);
      ctx.fillStyle = "#3a3b40";
      ctx.fill();
      ctx.strokeStyle = selected ? "#fff" : typeColor(t);
      ctx.lineWidth = selected ? 2 : 1.5;
      ctx.stroke();
      ctx.fillStyle = typeColor(t);
      for (const [sx, sy] of [inputPos(node, 0, lay), outputPos(node, 0, lay)]) {
        ctx.beginPath();
        ctx.arc(sx, sy, 5, 0, Math.PI * 2);
        ctx.fill();
      }
      ctx.globalAlpha = 1;
      return;
    }

    const top = y - TITLE_H;
    const fullH = lay.collapsed ? TITLE_H : h + TITLE_H;
    // body
    roundRect(ctx, x, top, w, fullH, 8);
    ctx.fillStyle = node.bgcolor || (node.mode === MODE_BYPASS ? "#4d2d5c" : node.missing ? "#5a2424" : "#2e3036");
    ctx.fill();
    // title bar
    if (!lay.collapsed) {
      ctx.save();
      ctx.clip();
      ctx.fillStyle = node.color || (def && def.output_node ? "#2c4a3a" : "#23252a");
      ctx.fillRect(x, top, w, TITLE_H);
      ctx.restore();
    }
    // outline
    let outline = null;
    if (error) outline = ["#ff4b4b", 3];
    else if (executing) outline = ["#4be37a", 3];
    else if (selected) outline = ["#ffffff", 2];
    roundRect(ctx, x, top, w, fullH, 8);
    ctx.strokeStyle = outline ? outline[0] : "#0f0f12";
    ctx.lineWidth = outline ? outline[1] : 1;
    ctx.stroke();

    if (lowDetail) {
      ctx.globalAlpha = 1;
      return;
    }

    // title
    ctx.textBaseline = "middle";
    ctx.font = "14px system-ui, sans-serif";
    ctx.fillStyle = "#dcdcdc";
    const title = node.title || (def ? def.display_name : node.type) + (node.missing ? " (missing)" : "");
    ctx.fillText(this.truncate(ctx, title, w - 40), x + 26, top + TITLE_H / 2);
    ctx.fillStyle = node.mode === MODE_BYPASS ? "#c58af0" : node.mode === MODE_MUTED ? "#888" : def && def.output_node ? "#5fd38d" : "#8a8f98";
    ctx.beginPath();
    ctx.arc(x + 13, top + TITLE_H / 2, 5, 0, Math.PI * 2);
    ctx.fill();
    if (node.mode === MODE_BYPASS || node.mode === MODE_MUTED) {
      ctx.font = "11px system-ui, sans-serif";
      ctx.fillStyle = "#bbb";
      ctx.textAlign = "right";
      ctx.fillText(node.mode === MODE_BYPASS ? "bypass" : "muted", x + w - 10, top + TITLE_H / 2);
      ctx.textAlign = "left";
    }

    // progress bar
    const prog = rt.progress[node.id];
    if (prog && prog.max > 0 && executing) {
      ctx.fillStyle = "#4be37a";
      ctx.fillRect(x + 1, y - 3, (w - 2) * Math.min(1, prog.value / prog.max), 3);
    }
    if (lay.collapsed) {
      ctx.globalAlpha = 1;
      return;
    }

    // sockets; while a link is dragged, the ones it cannot connect to fade
    ctx.font = "12px system-ui, sans-serif";
    const drag = app.interaction && app.interaction.drag && app.interaction.drag.kind === "link" ? app.interaction.drag : null;
    const baseAlpha = ctx.globalAlpha;
    node.inputs.forEach((inp, i) => {
      const [sx, sy] = inputPos(node, i, lay);
      const linked = !!linkInto(app.graph, node.id, i);
      const bad = error && error.inputs && error.inputs[inp.name];
      ctx.globalAlpha = drag && (drag.from !== "output" || drag.node === node.id || !typesCompatible(drag.type, inp.type)) ? baseAlpha * 0.3 : baseAlpha;
      this.drawSocket(sx, sy, inp.type, linked, bad);
      ctx.fillStyle = bad ? "#ff8080" : "#b8bcc4";
      ctx.textAlign = "left";
      ctx.fillText(this.truncate(ctx, inp.label || inp.name, w / 2 - 16), sx + 12, sy);
    });
    node.outputs.forEach((out, i) => {
      const [sx, sy] = outputPos(node, i, lay);
      const linked = app.hasOutputLinks(node.id, i);
      ctx.globalAlpha = drag && (drag.from !== "input" || drag.node === node.id || !typesCompatible(out.type, drag.type)) ? baseAlpha * 0.3 : baseAlpha;
      this.drawSocket(sx, sy, out.type, linked, false);
      ctx.fillStyle = "#b8bcc4";
      ctx.textAlign = "right";
      ctx.fillText(this.truncate(ctx, out.label || out.name, w / 2 - 16), sx - 12, sy);
    });
    ctx.textAlign = "left";
    ctx.globalAlpha = baseAlpha;

    // widgets
    for (const wd of lay.widgets) this.drawWidget(node, wd, error);

    // text output
    const out = rt.outputs[node.id];
    if (lay.text && out) {
      const t = lay.text;
      roundRect(ctx, x + t.x, y + t.y, t.w, t.h, 4);
      ctx.fillStyle = "#17181b";
      ctx.fill();
      ctx.fillStyle = "#d8d8d8";
      ctx.font = "12px ui-monospace, monospace";
      const lines = out.text.join("\n").split("\n");
      const maxLines = Math.floor((t.h - 8) / 16);
      lines.slice(0, maxLines).forEach((line, i) => ctx.fillText(this.truncate(ctx, line, t.w - 12), x + t.x + 6, y + t.y + 12 + i * 16));
    }

    // images
    if (lay.image) this.drawImages(node, lay, def);
    if (selected) {
      // resize grip
      ctx.strokeStyle = "#8a8f98";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      for (const d of [4, 8]) {
        ctx.moveTo(x + w - d - 2, y + h - 2);
        ctx.lineTo(x + w - 2, y + h - d - 2);
      }
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  drawSocket(x, y, type, filled, bad) {
    const { ctx } = this;
    ctx.beginPath();
    ctx.arc(x, y, 5.5, 0, Math.PI * 2);
    ctx.fillStyle = filled ? typeColor(type) : "#1c1d21";
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = bad ? "#ff4b4b" : typeColor(type);
    ctx.stroke();
  }

  drawWidget(node, wd, error) {
    const { ctx, app } = this;
    const x = node.pos[0] + wd.x;
    const y = node.pos[1] + wd.y;
    const { w, h } = wd;
    const bad = error && error.inputs && error.inputs[wd.name];
    const active = app.interaction && app.interaction.activeWidget && app.interaction.activeWidget.node === node.id && app.interaction.activeWidget.name === wd.name;
    roundRect(ctx, x, y, w, h, wd.kind === "multiline" ? 6 : h / 2);
    ctx.fillStyle = active ? "#34363d" : "#222327";
    ctx.fill();
    ctx.strokeStyle = bad ? "#ff4b4b" : "#45474e";
    ctx.lineWidth = bad ? 2 : 1;
    ctx.stroke();
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    const cy = y + h / 2;
    const label = wd.spec.opts && wd.spec.opts.label ? wd.spec.opts.label : wd.name;
    const value = node.widgets_values[wd.name];
    switch (wd.kind) {
      case "number":
      case "combo":
      case "control": {
        const shown = wd.kind === "control"
          ? (node.properties.control || {})[wd.target]
          : wd.kind === "number" ? formatNumber(value, wd.spec) : String(value ?? "");
        const lab = wd.kind === "control" ? "control after generate" : label;
        ctx.fillStyle = "#8d929b";
        ctx.fillText("◀", x + 8, cy);
        ctx.textAlign = "right";
        ctx.fillText("▶", x + w - 8, cy);
        ctx.fillStyle = "#9aa0a8";
        ctx.textAlign = "left";
        const labW = ctx.measureText(lab).width;
        ctx.fillText(this.truncate(ctx, lab, w * 0.5), x + 22, cy);
        ctx.fillStyle = "#e6e6e6";
        ctx.textAlign = "right";
        ctx.fillText(this.truncate(ctx, shown, Math.max(30, w - 50 - Math.min(labW, w * 0.5))), x + w - 22, cy);
        ctx.textAlign = "left";
        break;
      }
      case "toggle": {
        ctx.fillStyle = "#9aa0a8";
        ctx.fillText(this.truncate(ctx, label, w - 70), x + 12, cy);
        const on = !!value;
        const tx = x + w - 40;
        roundRect(ctx, tx, y + 5, 28, h - 10, (h - 10) / 2);
        ctx.fillStyle = on ? "#4e8ef7" : "#44464d";
        ctx.fill();
        ctx.beginPath();
        ctx.arc(on ? tx + 28 - (h - 10) / 2 : tx + (h - 10) / 2, cy, (h - 14) / 2, 0, Math.PI * 2);
        ctx.fillStyle = "#f0f0f0";
        ctx.fill();
        const lbl = on ? wd.spec.opts.label_on : wd.spec.opts.label_off;
        if (lbl) {
          ctx.fillStyle = "#ccc";
          ctx.textAlign = "right";
          ctx.fillText(lbl, tx - 6, cy);
          ctx.textAlign = "left";
        }
        break;
      }
      case "multiline": {
        ctx.save();
        ctx.beginPath();
        ctx.rect(x + 2, y + 2, w - 4, h - 4);
        ctx.clip();
        const text = String(value ?? "");
        ctx.fillStyle = text ? "#dedede" : "#6b6f77";
        const lines = text ? wrapLines(ctx, text, w - 16, 5) : [wd.name];
        lines.forEach((line, i) => ctx.fillText(line, x + 8, y + 12 + i * 15));
        ctx.restore();
        break;
      }
      case "dom":
        break;
      case "upload": {
        ctx.fillStyle = "#d0d0d0";
        ctx.textAlign = "center";
        ctx.fillText("choose file to upload", x + w / 2, cy);
        ctx.textAlign = "left";
        break;
      }
      default: {
        ctx.fillStyle = "#9aa0a8";
        const labW = Math.min(ctx.measureText(label).width, w * 0.45);
        ctx.fillText(this.truncate(ctx, label, w * 0.45), x + 12, cy);
        ctx.fillStyle = "#e6e6e6";
        ctx.textAlign = "right";
        ctx.fillText(this.truncate(ctx, String(value ?? ""), Math.max(20, w - labW - 30)), x + w - 12, cy);
        ctx.textAlign = "left";
      }
    }
  }

  drawImages(node, lay, def) {
    const { ctx, app } = this;
    const rt = app.runtime;
    const r = lay.image;
    const x = node.pos[0] + r.x;
    const y = node.pos[1] + r.y;
    let urls = [];
    if (rt.previews[node.id]) urls = [rt.previews[node.id]];
    else if (rt.outputs[node.id] && rt.outputs[node.id].images) urls = rt.outputs[node.id].images.map((im) => app.api.viewUrl(im));
    else if (uploadWidget(def) && node.widgets_values[uploadWidget(def)]) {
      urls = [app.api.viewUrl(inputImageRef(node.widgets_values[uploadWidget(def)]))];
    }
    if (!urls.length) return;
    const n = urls.length;
    const cols = Math.ceil(Math.sqrt(n));
    const rows = Math.ceil(n / cols);
    const cw = r.w / cols, ch = r.h / rows;
    urls.forEach((url, i) => {
      const img = this.image(url);
      const cx = x + (i % cols) * cw, cy = y + Math.floor(i / cols) * ch;
      if (!img.complete || img.failed || !img.naturalWidth) {
        ctx.fillStyle = "#555";
        ctx.font = "12px system-ui, sans-serif";
        ctx.fillText(img.failed ? "image not found" : "loading…", cx + 6, cy + 14);
        return;
      }
      const s = Math.min(cw / img.naturalWidth, ch / img.naturalHeight);
      const iw = img.naturalWidth * s, ih = img.naturalHeight * s;
      ctx.drawImage(img, cx + (cw - iw) / 2, cy + (ch - ih) / 2, iw, ih);
    });
    if (n === 1 && rt.outputs[node.id] && rt.outputs[node.id].images && !rt.previews[node.id]) {
      const img = this.image(urls[0]);
      if (img.naturalWidth) {
        ctx.fillStyle = "#9aa0a8";
        ctx.font = "11px system-ui, sans-serif";
        ctx.textAlign = "center";
        ctx.fillText(`${img.naturalWidth} × ${img.naturalHeight}`, x + r.w / 2, y + r.h + 2);
        ctx.textAlign = "left";
      }
    }
  }

  drawMinimap() {
    if (!this.mctx || this.minimap.hidden) return;
    const ctx = this.mctx;
    const graph = this.app.graph;
    const W = this.minimap.width, H = this.minimap.height;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "rgba(20,21,24,0.92)";
    ctx.fillRect(0, 0, W, H);
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const n of graph.nodes) {
      const lay = this.layouts.get(n.id);
      x0 = Math.min(x0, n.pos[0]);
      y0 = Math.min(y0, n.pos[1] - TITLE_H);
      x1 = Math.max(x1, n.pos[0] + (lay ? lay.w : n.size[0]));
      y1 = Math.max(y1, n.pos[1] + (lay ? lay.h : n.size[1]));
    }
    const [vx0, vy0, vx1, vy1] = this.view;
    x0 = Math.min(x0, vx0); y0 = Math.min(y0, vy0); x1 = Math.max(x1, vx1); y1 = Math.max(y1, vy1);
    const s = Math.min(W / (x1 - x0), H / (y1 - y0)) * 0.95;
    const ox = (W - (x1 - x0) * s) / 2 - x0 * s, oy = (H - (y1 - y0) * s) / 2 - y0 * s;
    this.minimapTransform = { s: s / this.dpr, ox: ox / this.dpr, oy: oy / this.dpr };
    for (const g of graph.groups) {
      ctx.fillStyle = "rgba(63,120,158,0.35)";
      ctx.fillRect(g.bounding[0] * s + ox, g.bounding[1] * s + oy, g.bounding[2] * s, g.bounding[3] * s);
    }
    ctx.fillStyle = "#6d727c";
    for (const n of graph.nodes) {
      const lay = this.layouts.get(n.id);
      const h = (lay ? lay.h : n.size[1]) + TITLE_H;
      ctx.fillRect(n.pos[0] * s + ox, (n.pos[1] - TITLE_H) * s + oy, Math.max(1, (lay ? lay.w : n.size[0]) * s), Math.max(1, h * s));
    }
    ctx.strokeStyle = "#e0e0e0";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(vx0 * s + ox, vy0 * s + oy, (vx1 - vx0) * s, (vy1 - vy0) * s);
  }
}

export function formatNumber(v, spec) {
  if (typeof v !== "number" || !Number.isFinite(v)) return String(v ?? "");
  if (spec.type === "INT") return String(Math.round(v));
  const step = spec.opts && spec.opts.round ? spec.opts.round : spec.opts && spec.opts.step ? spec.opts.step : 0.01;
  const decimals = Math.min(6, Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
  return v.toFixed(decimals);
}

function wrapLines(ctx, text, maxW, maxLines) {
  const lines = [];
  for (const para of text.split("\n")) {
    let line = "";
    for (const word of para.split(/(\s+)/)) {
      const next = line + word;
      if (ctx.measureText(next).width > maxW && line) {
        lines.push(line);
        line = word.trimStart();
      } else line = next;
      if (lines.length >= maxLines) return lines;
    }
    lines.push(line);
    if (lines.length >= maxLines) return lines;
  }
  return lines;
}
