// Drawing one node on the canvas: body and title, run state (outline, progress), sockets
// (faded when a dragged link cannot connect), widgets, text output and images. The
// renderer decides what is visible; this draws it, in world coordinates.

import { MODE_BYPASS, MODE_MUTED, effectiveOutputType, linkInto, typesCompatible } from "./state.js";
import { TITLE_H, formatNumber, inputImageRef, inputPos, outputPos, typeColor, uploadWidget } from "./layout.js";
import { comboHas } from "./missing.js";

/** The mark of a combo whose value the server does not list. */
const MISSING_COLOR = "#ffa53b";
// the fonts, named once: truncate is told the font rather than reading ctx.font back (slow)
const LABEL_FONT = "12px system-ui, sans-serif";
const LOW_DETAIL_FONT = "600 12px system-ui, sans-serif";
const TEXT_FONT = "12px ui-monospace, monospace";
const titleFonts = new Map(); // px -> font

export function roundRect(ctx, x, y, w, h, r) {
  ctx.beginPath();
  if (ctx.roundRect) ctx.roundRect(x, y, w, h, r);
  else ctx.rect(x, y, w, h);
}

function roundPath(x, y, w, h, r) {
  const p = new Path2D();
  if (p.roundRect) p.roundRect(x, y, w, h, r);
  else p.rect(x, y, w, h);
  return p;
}

export class NodePainter {
  constructor(renderer) {
    this.r = renderer;
    this.shapeCache = new WeakMap(); // node -> its shapes (see shapes)
  }

  get ctx() {
    return this.r.ctx;
  }

  get app() {
    return this.r.app;
  }

  /** The theme's canvas colours (theme.js). */
  get c() {
    return this.r.colors;
  }

  /** `text` cut to `maxW` in `font`, the font ctx is set to. */
  truncate(text, maxW, font) {
    return this.r.truncate(this.ctx, text, maxW, font);
  }

  /** `detail` (0..1) fades widgets and sockets in just above the low-detail zoom. */
  drawNode(node, lay, selected, lowDetail, detail = 1) {
    const { ctx, app } = this;
    const rt = app.runtime;
    const def = app.defFor(node);
    const error = rt.errors[node.id];
    const executing = rt.executing === node.id || rt.executing === String(node.id);
    ctx.globalAlpha = node.mode === MODE_MUTED ? 0.45 : 1;
    if (lay.reroute) this.drawReroute(node, lay, selected);
    else {
      this.drawBody(node, lay, def, { error, executing, selected });
      if (lowDetail) this.drawLowDetailTitle(node, lay, def);
      else {
        this.drawTitle(node, lay, def);
        if (executing) this.drawProgress(node, lay, rt.progress[node.id]);
        if (detail < 1) ctx.globalAlpha *= Math.max(0, detail);
        if (!lay.collapsed) this.drawContents(node, lay, def, error, selected);
      }
    }
    ctx.globalAlpha = 1;
  }

  drawReroute(node, lay, selected) {
    const { ctx, app } = this;
    const [x, y] = node.pos;
    const { w, h } = lay;
    const t = effectiveOutputType(app.graph, node, 0);
    roundRect(ctx, x, y, w, h, h / 2);
    ctx.fillStyle = "#3a3b40";
    ctx.fill();
    ctx.strokeStyle = selected ? this.c.nodeSelected : typeColor(t);
    ctx.lineWidth = selected ? 2 : 1.5;
    ctx.stroke();
    ctx.fillStyle = typeColor(t);
    for (const [sx, sy] of [inputPos(node, 0, lay), outputPos(node, 0, lay)]) {
      ctx.beginPath();
      ctx.arc(sx, sy, 5, 0, Math.PI * 2);
      ctx.fill();
    }
  }

  /** A node's rounded shapes in world units, as paths kept while the node neither moves nor is
   * laid out again (the layout cache keeps `lay` the same object): its body, its title bar (the
   * body's top corners: no clip, which costs more to record and to raster) and its widgets. */
  shapes(node, lay) {
    const [x, y] = node.pos;
    let s = this.shapeCache.get(node);
    if (s && s.lay === lay && s.x === x && s.y === y) return s;
    const top = y - TITLE_H;
    s = {
      lay, x, y,
      body: roundPath(x, top, lay.w, lay.collapsed ? TITLE_H : lay.h + TITLE_H, 8),
      title: lay.collapsed ? null : roundPath(x, top, lay.w, TITLE_H, [8, 8, 0, 0]),
      widgets: lay.widgets.map((wd) => roundPath(x + wd.x, y + wd.y, wd.w, wd.h, wd.kind === "multiline" ? 6 : wd.h / 2)),
    };
    this.shapeCache.set(node, s);
    return s;
  }

  /** The node's shape, title bar and outline (red: error, green: running, white: selected). */
  drawBody(node, lay, def, { error, executing, selected }) {
    const { ctx } = this;
    const s = this.shapes(node, lay);
    ctx.fillStyle = node.bgcolor || (node.mode === MODE_BYPASS ? "#4d2d5c" : node.missing ? "#5a2424" : this.c.nodeBg);
    ctx.fill(s.body);
    if (s.title) {
      ctx.fillStyle = node.color || (def && def.output_node ? this.c.outputTitleBg : this.c.nodeTitleBg);
      ctx.fill(s.title);
    }
    let outline = null;
    if (error) outline = ["#ff4b4b", 3];
    else if (executing) outline = ["#4be37a", 3];
    else if (selected) outline = [this.c.nodeSelected, 2];
    ctx.strokeStyle = outline ? outline[0] : this.c.nodeOutline;
    ctx.lineWidth = outline ? outline[1] : 1;
    ctx.stroke(s.body);
  }

  /** Title text, the mode dot and a "bypass"/"muted" tag. */
  drawTitle(node, lay, def) {
    const { ctx } = this;
    const x = node.pos[0];
    const top = node.pos[1] - TITLE_H;
    const w = lay.w;
    ctx.textBaseline = "middle";
    // at least 11 px on screen while it fits the title bar, so titles stay readable zoomed out
    const px = Math.round(Math.min(24, Math.max(14, 11 / this.r.frame.scale)));
    let font = titleFonts.get(px);
    if (!font) titleFonts.set(px, (font = `${px}px system-ui, sans-serif`));
    ctx.font = font;
    ctx.fillStyle = this.c.nodeTitle;
    const title = node.title || (def ? def.display_name : node.type) + (node.missing ? " (missing)" : "");
    ctx.fillText(this.truncate(title, w - 40, font), x + 26, top + TITLE_H / 2);
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
  }

  /** Zoomed out: the title in readable type (12 px on screen) across the whole node. Drawn in
   * screen space, then the world transform is set back (no save/restore: they cost more, and
   * the font restored each time is parsed again for the next node). */
  drawLowDetailTitle(node, lay, def) {
    const { ctx } = this;
    const f = this.r.frame;
    const w = lay.w * f.scale;
    if (w < 40) return; // too small for a word
    const h = (lay.collapsed ? TITLE_H : lay.h + TITLE_H) * f.scale;
    const sx = (node.pos[0] + f.ox) * f.scale, sy = (node.pos[1] - TITLE_H + f.oy) * f.scale;
    const title = node.title || (def ? def.display_name : node.type);
    ctx.setTransform(f.dpr, 0, 0, f.dpr, 0, 0);
    ctx.font = LOW_DETAIL_FONT;
    ctx.fillStyle = this.c.nodeTitle;
    ctx.textBaseline = "middle";
    ctx.textAlign = "center";
    ctx.fillText(this.truncate(title, w - 10, LOW_DETAIL_FONT), sx + w / 2, sy + h / 2);
    ctx.textAlign = "left";
    ctx.setTransform(...f.world);
  }

  drawProgress(node, lay, prog) {
    if (!prog || !(prog.max > 0)) return;
    const { ctx } = this;
    ctx.fillStyle = "#4be37a";
    ctx.fillRect(node.pos[0] + 1, node.pos[1] - 3, (lay.w - 2) * Math.min(1, prog.value / prog.max), 3);
  }

  /** Everything below the title of an expanded node. */
  drawContents(node, lay, def, error, selected) {
    const { ctx } = this;
    this.drawSockets(node, lay, error);
    const pills = this.shapes(node, lay).widgets;
    lay.widgets.forEach((wd, i) => this.drawWidget(node, wd, error, pills[i]));
    const out = this.app.runtime.outputs[node.id];
    if (lay.text && out) this.drawText(node, lay.text, out.text);
    if (lay.image) this.drawImages(node, lay, def);
    if (selected) {
      // resize grip
      const [x, y] = node.pos;
      const { w, h } = lay;
      ctx.strokeStyle = "#8a8f98";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      for (const d of [4, 8]) {
        ctx.moveTo(x + w - d - 2, y + h - 2);
        ctx.lineTo(x + w - 2, y + h - d - 2);
      }
      ctx.stroke();
    }
  }

  /** Sockets and their labels; while a link is dragged, the ones it cannot connect to fade. */
  drawSockets(node, lay, error) {
    const { ctx, app } = this;
    const w = lay.w;
    ctx.font = LABEL_FONT;
    const ia = app.interaction;
    const drag = ia && ia.drag && ia.drag.kind === "link" ? ia.drag : null;
    const baseAlpha = ctx.globalAlpha;
    node.inputs.forEach((inp, i) => {
      const [sx, sy] = inputPos(node, i, lay);
      const link = linkInto(app.graph, node.id, i);
      const bad = error && error.inputs && error.inputs[inp.name];
      ctx.globalAlpha = drag && (drag.from !== "output" || drag.node === node.id || !typesCompatible(drag.type, inp.type)) ? baseAlpha * 0.3 : baseAlpha;
      // a socket that takes several types ("*", a MatchType's) shows what its link carries
      const shown = link && link.type && (inp.type === "*" || String(inp.type).includes(",")) ? link.type : inp.type;
      this.drawSocket(sx, sy, shown, !!link, bad);
      ctx.fillStyle = bad ? "#ff8080" : this.c.nodeLabel;
      ctx.textAlign = "left";
      ctx.fillText(this.truncate(inp.label || inp.name, w / 2 - 16, LABEL_FONT), sx + 12, sy);
    });
    node.outputs.forEach((out, i) => {
      const [sx, sy] = outputPos(node, i, lay);
      const linked = app.hasOutputLinks(node.id, i);
      ctx.globalAlpha = drag && (drag.from !== "input" || drag.node === node.id || !typesCompatible(out.type, drag.type)) ? baseAlpha * 0.3 : baseAlpha;
      this.drawSocket(sx, sy, out.type, linked, false);
      ctx.fillStyle = this.c.nodeLabel;
      ctx.textAlign = "right";
      ctx.fillText(this.truncate(out.label || out.name, w / 2 - 16, LABEL_FONT), sx - 12, sy);
    });
    ctx.textAlign = "left";
    ctx.globalAlpha = baseAlpha;
  }

  drawSocket(x, y, type, filled, bad) {
    const { ctx } = this;
    ctx.beginPath();
    ctx.arc(x, y, 5.5, 0, Math.PI * 2);
    ctx.fillStyle = filled ? typeColor(type) : this.c.canvasBg;
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = bad ? "#ff4b4b" : typeColor(type);
    ctx.stroke();
  }

  /** A node's text output (ShowText and the like), as many lines as fit. */
  drawText(node, t, text) {
    const { ctx } = this;
    const [x, y] = node.pos;
    roundRect(ctx, x + t.x, y + t.y, t.w, t.h, 4);
    ctx.fillStyle = this.c.textBg;
    ctx.fill();
    ctx.fillStyle = this.c.widgetText;
    ctx.font = TEXT_FONT;
    const lines = text.join("\n").split("\n");
    const maxLines = Math.floor((t.h - 8) / 16);
    lines.slice(0, maxLines).forEach((line, i) => ctx.fillText(this.truncate(line, t.w - 12, TEXT_FONT), x + t.x + 6, y + t.y + 12 + i * 16));
  }

  /** `pill`: the widget's rounded box as a Path2D (shapes). */
  drawWidget(node, wd, error, pill) {
    const { ctx, app } = this;
    const x = node.pos[0] + wd.x;
    const y = node.pos[1] + wd.y;
    const { w, h } = wd;
    const bad = error && error.inputs && error.inputs[wd.name];
    const aw = app.interaction && app.interaction.activeWidget;
    const active = aw && aw.node === node.id && aw.name === wd.name;
    const value = node.widgets_values[wd.name];
    // a combo value the server does not list (a missing model file, say) is marked in orange
    const missing = wd.kind === "combo" && !comboHas(wd.spec, value);
    ctx.fillStyle = active ? this.c.widgetBgActive : missing ? "#3a2a1c" : this.c.widgetBg;
    ctx.fill(pill);
    ctx.strokeStyle = bad ? "#ff4b4b" : missing ? MISSING_COLOR : this.c.widgetBorder;
    ctx.lineWidth = bad || missing ? 2 : 1;
    ctx.stroke(pill);
    ctx.font = LABEL_FONT;
    ctx.textBaseline = "middle";
    const box = { x, y, w, h, cy: y + h / 2 };
    const label = wd.spec.label || (wd.spec.opts && wd.spec.opts.label) || wd.name; // spec.label: an option's input (dynamic.js)
    switch (wd.kind) {
      case "number":
      case "combo":
      case "control":
        this.drawStepper(node, wd, box, label, value, missing);
        break;
      case "toggle":
        this.drawToggle(wd, box, label, value);
        break;
      case "multiline":
        if (!wd.markdown) this.drawMultiline(wd, box, value); // a Markdown note's text is shown rendered (markdown.js)
        break;
      case "dom":
        break;
      case "upload":
        ctx.fillStyle = this.c.widgetText;
        ctx.textAlign = "center";
        ctx.fillText("choose file to upload", x + w / 2, box.cy);
        ctx.textAlign = "left";
        break;
      default:
        this.drawTextValue(box, label, value);
    }
  }

  /** Number, combo and control-after-generate widgets: ◀ label value ▶. */
  drawStepper(node, wd, { x, w, cy }, label, value, missing = false) {
    const { ctx } = this;
    const shown = wd.kind === "control"
      ? (node.properties.control || {})[wd.target]
      : wd.kind === "number" ? formatNumber(value, wd.spec) : `${missing ? "⚠ " : ""}${value ?? ""}`;
    const lab = wd.kind === "control" ? "control after generate" : label;
    ctx.fillStyle = this.c.widgetMuted;
    ctx.fillText("◀", x + 8, cy);
    ctx.textAlign = "right";
    ctx.fillText("▶", x + w - 8, cy);
    ctx.fillStyle = this.c.widgetLabel;
    ctx.textAlign = "left";
    const labW = this.r.textWidth(ctx, LABEL_FONT, lab);
    ctx.fillText(this.truncate(lab, w * 0.5, LABEL_FONT), x + 22, cy);
    ctx.fillStyle = missing ? MISSING_COLOR : this.c.widgetText;
    ctx.textAlign = "right";
    ctx.fillText(this.truncate(shown, Math.max(30, w - 50 - Math.min(labW, w * 0.5)), LABEL_FONT), x + w - 22, cy);
    ctx.textAlign = "left";
  }

  drawToggle(wd, { x, y, w, h, cy }, label, value) {
    const { ctx } = this;
    ctx.fillStyle = this.c.widgetLabel;
    ctx.fillText(this.truncate(label, w - 70, LABEL_FONT), x + 12, cy);
    const on = !!value;
    const tx = x + w - 40;
    roundRect(ctx, tx, y + 5, 28, h - 10, (h - 10) / 2);
    ctx.fillStyle = on ? "#4e8ef7" : this.c.widgetBorder;
    ctx.fill();
    ctx.beginPath();
    ctx.arc(on ? tx + 28 - (h - 10) / 2 : tx + (h - 10) / 2, cy, (h - 14) / 2, 0, Math.PI * 2);
    ctx.fillStyle = "#f0f0f0";
    ctx.fill();
    const lbl = on ? wd.spec.opts.label_on : wd.spec.opts.label_off;
    if (lbl) {
      ctx.fillStyle = this.c.widgetLabel;
      ctx.textAlign = "right";
      ctx.fillText(lbl, tx - 6, cy);
      ctx.textAlign = "left";
    }
  }

  drawMultiline(wd, { x, y, w, h }, value) {
    const { ctx } = this;
    ctx.save();
    ctx.beginPath();
    ctx.rect(x + 2, y + 2, w - 4, h - 4);
    ctx.clip();
    const text = String(value ?? "");
    ctx.fillStyle = text ? this.c.widgetText : this.c.widgetMuted;
    const lines = text ? this.wrapped(text, w - 16) : [wd.name];
    lines.forEach((line, i) => ctx.fillText(line, x + 8, y + 12 + i * 15));
    ctx.restore();
  }

  /** A multiline value's first lines wrapped to `maxW` in LABEL_FONT, kept while the text and
   * width stay: wrapping measures the text word by word, a few dozen measureText calls. */
  wrapped(text, maxW) {
    this.wraps = this.wraps || new Map();
    const hit = this.wraps.get(text);
    if (hit && hit.maxW === maxW) return hit.lines;
    const lines = wrapLines(this.ctx, text, maxW, 5);
    if (this.wraps.size > 500) this.wraps.clear();
    this.wraps.set(text, { maxW, lines });
    return lines;
  }

  /** A one-line text widget: label on the left, value on the right. */
  drawTextValue({ x, w, cy }, label, value) {
    const { ctx } = this;
    ctx.fillStyle = this.c.widgetLabel;
    const labW = Math.min(this.r.textWidth(ctx, LABEL_FONT, label), w * 0.45);
    ctx.fillText(this.truncate(label, w * 0.45, LABEL_FONT), x + 12, cy);
    ctx.fillStyle = this.c.widgetText;
    ctx.textAlign = "right";
    ctx.fillText(this.truncate(String(value ?? ""), Math.max(20, w - labW - 30), LABEL_FONT), x + w - 12, cy);
    ctx.textAlign = "left";
  }

  /** The URLs a node's image area shows: a live preview, the run's images or the picked input. */
  imageUrlsOf(node, def) {
    const app = this.app;
    const rt = app.runtime;
    if (rt.previews[node.id]) return [rt.previews[node.id]];
    if (rt.outputs[node.id] && rt.outputs[node.id].images) return rt.outputs[node.id].images.map((im) => app.api.viewUrl(im));
    if (uploadWidget(def) && node.widgets_values[uploadWidget(def)]) {
      return [app.api.viewUrl(inputImageRef(node.widgets_values[uploadWidget(def)]))];
    }
    return [];
  }

  drawImages(node, lay, def) {
    const { ctx } = this;
    const rt = this.app.runtime;
    const r = lay.image;
    const x = node.pos[0] + r.x;
    const y = node.pos[1] + r.y;
    const urls = this.imageUrlsOf(node, def);
    if (!urls.length) return;
    const n = urls.length;
    const cols = Math.ceil(Math.sqrt(n));
    const rows = Math.ceil(n / cols);
    const cw = r.w / cols, ch = r.h / rows;
    urls.forEach((url, i) => {
      const img = this.r.image(url);
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
      const img = this.r.image(urls[0]);
      if (img.naturalWidth) {
        ctx.fillStyle = this.c.widgetLabel;
        ctx.font = "11px system-ui, sans-serif";
        ctx.textAlign = "center";
        ctx.fillText(`${img.naturalWidth} × ${img.naturalHeight}`, x + r.w / 2, y + r.h + 2);
        ctx.textAlign = "left";
      }
    }
  }
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
