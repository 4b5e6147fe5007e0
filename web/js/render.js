// Canvas2D renderer: the viewport (world <-> screen), drawing on demand with viewport
// culling and a lower level of detail when zoomed out, links, groups, the minimap, and the
// web extensions' DOM widgets placed over their nodes. Nodes are drawn by paint.js.

import { MODE_MUTED, getNode } from "./state.js";
import { TITLE_H, inputPos, layoutNode, outputPos, typeColor } from "./layout.js";
import { NodePainter, roundRect } from "./paint.js";
import { LINK_SPLINE, traceLink } from "./links.js";
import { readPalette } from "./theme.js";
import { MarkdownNotes } from "./markdown.js";
import { LayoutCache } from "./layout_cache.js";
import { MinimapPicture } from "./minimap.js";

/** Zoom below which nodes are drawn simplified (the setting LiteGraph.Canvas.LowQualityRenderingZoomThreshold). */
export const LOD_THRESHOLD = 0.45;

export class Renderer {
  constructor(app, canvas, minimap) {
    this.app = app;
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.minimap = minimap;
    this.mctx = minimap ? minimap.getContext("2d") : null;
    this.minimapPicture = new MinimapPicture();
    this.dirty = true;
    this.frameScheduled = false;
    this.images = new Map();
    this.layouts = new Map();
    this.layoutCache = new LayoutCache(); // drawing's layouts, kept while their nodes are unchanged
    this.lastDrawMs = 0;
    this.drawTimes = [];
    this.visibleCount = 0;
    this.truncCache = new Map();
    this.textWidths = new Map(); // font -> text -> width
    this.painter = new NodePainter(this);
    this.notes = new MarkdownNotes(this); // Markdown notes' text, rendered over their nodes
    this.colors = readPalette(); // the theme's (settings.js changes them)
    this.linkMode = LINK_SPLINE;
    this.lodThreshold = LOD_THRESHOLD;
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
    return layoutNode(node, app.defFor(node), app.runtime, this.customWidgets());
  }

  /** The layout drawing uses: kept from the last frame while the node is unchanged. */
  keptLayout(node) {
    const app = this.app;
    return this.layoutCache.get(node, app.defFor(node), app.runtime, this.customWidgets());
  }

  /** The web extensions' widget factories for layoutNode, one function per extension host. */
  customWidgets() {
    const app = this.app;
    if (this.extHostSeen !== app.extHost) {
      this.extHostSeen = app.extHost;
      this.customFn = app.extHost ? (spec) => app.customWidget(spec) : null;
    }
    return this.customFn;
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

  /** `text` cut with "…" to fit `maxW` in `font` (the font ctx is set to: reading ctx.font back
   * costs microseconds, hundreds of times a frame). Only cut texts are kept in truncCache. */
  truncate(ctx, text, maxW, font = ctx.font) {
    if (this.textWidth(ctx, font, text) <= maxW) return text;
    const key = `${font}|${maxW | 0}|${text}`;
    let v = this.truncCache.get(key);
    if (v !== undefined) return v;
    let lo = 0, hi = text.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (ctx.measureText(text.slice(0, mid) + "…").width <= maxW) lo = mid;
      else hi = mid - 1;
    }
    v = text.slice(0, lo) + "…";
    if (this.truncCache.size > 5000) this.truncCache.clear();
    this.truncCache.set(key, v);
    return v;
  }

  /** The width of `text` in `font` (which ctx is set to), measured once. */
  textWidth(ctx, font, text) {
    let widths = this.textWidths.get(font);
    if (!widths) this.textWidths.set(font, (widths = new Map()));
    let w = widths.get(text);
    if (w === undefined) {
      w = ctx.measureText(text).width;
      if (widths.size > 5000) widths.clear();
      widths.set(text, w);
    }
    return w;
  }

  draw() {
    const t0 = performance.now();
    this.dirty = false;
    const { ctx, app } = this;
    const graph = app.graph;
    const { scale, offset } = this.ds;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = this.colors.canvasBg;
    ctx.fillRect(0, 0, this.width, this.height);
    const [vx0, vy0] = this.toWorld(0, 0);
    const [vx1, vy1] = this.toWorld(this.width, this.height);
    this.view = [vx0, vy0, vx1, vy1];
    const d = this.dpr * scale;
    // this frame's view, read by the painter (the ds getter goes through the app and its tab)
    this.frame = { scale, ox: offset[0], oy: offset[1], dpr: this.dpr, world: [d, 0, 0, d, d * offset[0], d * offset[1]] };
    ctx.setTransform(...this.frame.world);
    this.drawGrid(vx0, vy0, vx1, vy1, scale);
    // below the threshold nodes are simplified; just above it their contents fade in
    const lowDetail = scale < this.lodThreshold;
    const detail = Math.min(1, (scale - this.lodThreshold) / (this.lodThreshold * 0.35));

    // layouts of all nodes (kept while unchanged), visibility per node
    this.layouts.clear();
    const visible = [];
    for (const node of graph.nodes) {
      const lay = this.keptLayout(node);
      this.layouts.set(node.id, lay);
      const top = node.pos[1] - (lay.reroute ? 0 : TITLE_H);
      if (node.pos[0] > vx1 || node.pos[0] + lay.w < vx0 || top > vy1 || node.pos[1] + lay.h < vy0) continue;
      visible.push(node);
    }
    this.visibleCount = visible.length;

    for (const group of graph.groups) this.drawGroup(group, lowDetail);
    this.drawLinks(lowDetail);
    const sel = app.selection;
    for (const node of visible) this.painter.drawNode(node, this.layouts.get(node.id), sel.has(node.id), lowDetail, detail);
    app.interaction && app.interaction.drawOverlay(ctx, scale);
    if (app.extHost) this.syncDomWidgets(visible, lowDetail);
    this.notes.sync(visible, lowDetail, detail);
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
    ctx.strokeStyle = this.colors.grid;
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
    if (lowDetail) this.drawLowDetailLabel(group.title, x, y, w);
    else {
      ctx.fillStyle = this.colors.groupTitle;
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

  /** A group's title zoomed out: 13 px on screen, along its top edge. */
  drawLowDetailLabel(text, x, y, w) {
    const { ctx } = this;
    const scale = this.ds.scale;
    if (w * scale < 40) return;
    const [sx, sy] = this.toScreen(x, y);
    ctx.save();
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    const font = "bold 13px system-ui, sans-serif";
    ctx.font = font;
    ctx.fillStyle = this.colors.groupTitle;
    ctx.textBaseline = "top";
    ctx.fillText(this.truncate(ctx, text, w * scale - 8, font), sx + 4, sy + 3);
    ctx.restore();
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
      const minX = Math.min(x1, x2) - 10, maxX = Math.max(x1, x2) + 10;
      const minY = Math.min(y1, y2) - 10, maxY = Math.max(y1, y2) + 10;
      if (maxX < vx0 || minX > vx1 || maxY < vy0 || minY > vy1) continue;
      const muted = o.mode === MODE_MUTED || t.mode === MODE_MUTED;
      const color = muted ? "#555" : typeColor(link.type);
      // links of the selected nodes are drawn wider, on top
      const key = app.selection.has(o.id) || app.selection.has(t.id) ? `${color}|sel` : color;
      if (!byColor.has(key)) byColor.set(key, []);
      byColor.get(key).push([x1, y1, x2, y2]);
    }
    const baseWidth = ctx.lineWidth;
    const ordered = [...byColor].sort((a, b) => a[0].endsWith("|sel") - b[0].endsWith("|sel"));
    for (const [key, segs] of ordered) {
      const [color, sel] = key.split("|");
      ctx.strokeStyle = color;
      ctx.lineWidth = sel ? baseWidth * 1.8 : baseWidth;
      ctx.beginPath();
      for (const [x1, y1, x2, y2] of segs) {
        ctx.moveTo(x1, y1);
        if (lowDetail && this.linkMode === LINK_SPLINE) ctx.lineTo(x2, y2); // zoomed out a curve is a line
        else traceLink(ctx, x1, y1, x2, y2, this.linkMode);
      }
      ctx.stroke();
    }
  }

  drawMinimap() {
    if (!this.mctx || this.minimap.hidden) return;
    const ctx = this.mctx;
    const graph = this.app.graph;
    const W = this.minimap.width, H = this.minimap.height;
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
    this.minimapPicture.draw(ctx, graph, this.layouts, W, H, s, ox, oy); // background, groups, nodes
    ctx.strokeStyle = "#e0e0e0";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(vx0 * s + ox, vy0 * s + oy, (vx1 - vx0) * s, (vy1 - vy0) * s);
  }
}
