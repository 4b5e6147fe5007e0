// Mouse, wheel and keyboard on the canvas: select, move, wire, pan, zoom, box select,
// groups. Widget editing (widgets.js) and the context menus (context_menu.js) are the
// interaction's parts; hit testing is in hit.js.

import { effectiveOutputType, getNode, linkInto, removeLink } from "./state.js";
import { TITLE_H, inputPos, outputPos } from "./layout.js";
import { closeMenus } from "./menu.js";
import { closeOverlays } from "./overlays.js";
import { hitTest, linkAt } from "./hit.js";
import { comboHas, missingNote } from "./missing.js";
import { ContextMenus } from "./context_menu.js";
import { WidgetEditing } from "./widgets.js";
import { Wiring } from "./wiring.js";

export class Interaction {
  constructor(app, canvas) {
    this.app = app;
    this.canvas = canvas;
    this.drag = null;
    this.mouse = [0, 0]; // screen (canvas) coords
    this.spaceDown = false;
    this.activeWidget = null;
    this.widgets = new WidgetEditing(this);
    this.menus = new ContextMenus(this);
    this.wiring = new Wiring(this);
    canvas.addEventListener("pointerdown", (e) => this.onDown(e));
    // focus is managed here: the default would steal it from editors opened on pointerdown
    canvas.addEventListener("mousedown", (e) => e.preventDefault());
    window.addEventListener("pointermove", (e) => this.onMove(e));
    window.addEventListener("pointerup", (e) => this.onUp(e));
    canvas.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    canvas.addEventListener("dblclick", (e) => this.onDblClick(e));
    canvas.addEventListener("click", () => {
      const up = this.pendingUpload;
      this.pendingUpload = null;
      if (up) this.app.pickAndUpload(up.node, up.name);
    });
    canvas.addEventListener("contextmenu", (e) => this.menus.onContextMenu(e));
    canvas.addEventListener("pointerleave", () => this.hideTooltip());
    window.addEventListener("keydown", (e) => this.onKey(e));
    window.addEventListener("keyup", (e) => {
      if (e.code === "Space") this.spaceDown = false;
    });
  }

  get graph() {
    return this.app.graph;
  }

  get r() {
    return this.app.renderer;
  }

  local(e) {
    const rect = this.canvas.getBoundingClientRect();
    return [e.clientX - rect.left, e.clientY - rect.top];
  }

  // ---- hit testing --------------------------------------------------------------------

  /** What is under a world point: a node part (socket, title, widget, ...), a group, or null. */
  hit(wx, wy) {
    return hitTest(this.app, wx, wy);
  }

  linkAt(wx, wy) {
    return linkAt(this.app, wx, wy);
  }

  layout(node) {
    // always fresh: the last frame's layouts may predate an edit not yet drawn
    return this.r.layout(node);
  }

  // ---- pointer ------------------------------------------------------------------------

  onDown(e) {
    this.pendingUpload = null;
    clearTimeout(this.tipTimer);
    if (this.tooltipEl) this.tooltipEl.hidden = true;
    closeMenus();
    this.app.closeEditors();
    this.canvas.focus({ preventScroll: true });
    const [sx, sy] = this.local(e);
    this.mouse = [sx, sy];
    const [wx, wy] = this.r.toWorld(sx, sy);
    if (e.button === 1 || (e.button === 0 && this.spaceDown)) {
      this.startPan(sx, sy);
      e.preventDefault();
      return;
    }
    if (e.button !== 0) return;
    const h = this.hit(wx, wy);
    if (!h) this.downOnSpace(e, sx, sy, wx, wy);
    else if (h.group) this.downOnGroup(h, wx, wy);
    else {
      this.app.selectedGroup = null;
      this.downOnNode(e, h, wx, wy);
    }
  }

  /** Empty canvas: box select with a modifier, else deselect and pan. */
  downOnSpace(e, sx, sy, wx, wy) {
    const app = this.app;
    app.selectedGroup = null;
    if (e.ctrlKey || e.shiftKey || e.metaKey) {
      this.drag = { kind: "box", start: [wx, wy], end: [wx, wy], additive: e.shiftKey, base: new Set(app.selection) };
    } else {
      if (app.selection.size) app.setSelection([]);
      this.startPan(sx, sy);
    }
    this.r.requestRender();
  }

  /** A group's title moves it with the nodes inside; its corner resizes it. */
  downOnGroup(h, wx, wy) {
    const app = this.app;
    app.selectedGroup = h.group;
    app.setSelection([]);
    const idx = this.graph.groups.indexOf(h.group);
    if (h.part === "group-resize") {
      app.history.begin("Resize group");
      this.drag = { kind: "group-resize", idx, start: [wx, wy], orig: h.group.bounding.slice() };
    } else {
      app.history.begin("Move group");
      const [gx, gy, gw, gh] = h.group.bounding;
      const inside = this.graph.nodes.filter((n) => {
        const lay = this.layout(n);
        return n.pos[0] >= gx && n.pos[0] + lay.w <= gx + gw && n.pos[1] - TITLE_H >= gy && n.pos[1] + lay.h <= gy + gh;
      }).map((n) => n.id);
      this.drag = { kind: "group-move", idx, start: [wx, wy], orig: h.group.bounding.slice(), nodes: inside, origPos: inside.map((id) => getNode(this.graph, id).pos.slice()) };
    }
    this.r.requestRender();
  }

  downOnNode(e, h, wx, wy) {
    const app = this.app;
    const node = h.node;
    if (h.part === "output") {
      this.startLinkDrag({ from: "output", node: node.id, slot: h.slot, type: effectiveOutputType(this.graph, node, h.slot) }, wx, wy);
    } else if (h.part === "input") {
      this.downOnInput(node, h.slot, wx, wy);
    } else if (h.part === "collapse") {
      app.cmd(node.collapsed ? "Expand node" : "Collapse node", () => {
        node.collapsed = !node.collapsed;
        if (!node.collapsed) delete node.collapsed;
      });
    } else if (h.part === "resize") {
      app.history.begin("Resize node");
      this.drag = { kind: "resize", node: node.id, start: [wx, wy], orig: [this.layout(node).w, this.layout(node).h] };
    } else if (h.part === "widget" && !h.widget.readonly && !e.shiftKey) {
      if (!app.selection.has(node.id)) app.setSelection([node.id]);
      this.widgets.widgetDown(node, h.widget, h.lx);
    } else {
      this.startMove(e, node, wx, wy);
      // a click (no drag, no modifier) on the node's picture opens it in the image viewer
      if (h.part === "body" && !e.altKey && !e.shiftKey && !e.ctrlKey && !e.metaKey) this.drag.image = this.imageAt(node, wx, wy);
    }
  }

  /** Which of the pictures `node` shows (a grid, as paint.js draws them) is at a world point; -1 for none. */
  imageAt(node, wx, wy) {
    const r = this.layout(node).image;
    const n = r ? this.app.imageUrls(node).length : 0;
    const [x, y] = r ? [wx - node.pos[0] - r.x, wy - node.pos[1] - r.y] : [-1, -1];
    if (!n || x < 0 || y < 0 || x > r.w || y > r.h) return -1;
    const cols = Math.ceil(Math.sqrt(n));
    const rows = Math.ceil(n / cols);
    const i = Math.min(rows - 1, Math.floor((y * rows) / r.h)) * cols + Math.min(cols - 1, Math.floor((x * cols) / r.w));
    return i < n ? i : -1;
  }

  /** Drag a new link from an input, or pick up the one it has and drag it on from its origin. */
  downOnInput(node, slot, wx, wy) {
    const existing = linkInto(this.graph, node.id, slot);
    this.app.history.begin("Connect");
    if (existing) {
      removeLink(this.graph, existing.id);
      const origin = getNode(this.graph, existing.origin_id);
      this.drag = { kind: "link", from: "output", node: origin.id, slot: existing.origin_slot, type: effectiveOutputType(this.graph, origin, existing.origin_slot), pos: [wx, wy], started: true };
    } else {
      this.drag = { kind: "link", from: "input", node: node.id, slot, type: node.inputs[slot].type, pos: [wx, wy], started: true };
    }
    this.r.requestRender();
  }

  /** Select (Shift adds, Ctrl toggles) and start moving; Alt moves a copy. */
  startMove(e, node, wx, wy) {
    const app = this.app;
    if (e.shiftKey || e.ctrlKey || e.metaKey) {
      const next = new Set(app.selection);
      if (next.has(node.id) && (e.ctrlKey || e.metaKey)) next.delete(node.id);
      else next.add(node.id);
      app.setSelection([...next]);
    } else if (!app.selection.has(node.id)) {
      app.setSelection([node.id]);
    }
    app.history.begin(e.altKey ? "Clone nodes" : "Move nodes");
    if (e.altKey) {
      const created = app.duplicateSelection([0, 0], false);
      app.setSelection(created);
    }
    const ids = [...app.selection];
    this.drag = { kind: "move", start: [wx, wy], ids, orig: ids.map((id) => getNode(this.graph, id).pos.slice()), moved: false, clickNode: node.id, shift: e.shiftKey };
    this.r.requestRender();
  }

  startPan(sx, sy) {
    const ds = this.r.ds;
    this.drag = { kind: "pan", start: [sx, sy], orig: ds.offset.slice() };
    this.canvas.style.cursor = "grabbing";
  }

  startLinkDrag(info, wx, wy) {
    this.app.history.begin("Connect");
    this.drag = { kind: "link", ...info, pos: [wx, wy], started: true };
    this.r.requestRender();
  }

  onMove(e) {
    const [sx, sy] = this.local(e);
    this.mouse = [sx, sy];
    const d = this.drag;
    if (!d) {
      if (e.target === this.canvas) this.updateCursor(sx, sy);
      return;
    }
    const [wx, wy] = this.r.toWorld(sx, sy);
    const graph = this.graph;
    switch (d.kind) {
      case "pan": {
        const s = this.r.ds.scale;
        this.r.ds.offset = [d.orig[0] + (sx - d.start[0]) / s, d.orig[1] + (sy - d.start[1]) / s];
        this.app.viewChanged();
        break;
      }
      case "box":
        d.end = [wx, wy];
        this.updateBox(d);
        break;
      case "move": {
        const dx = wx - d.start[0], dy = wy - d.start[1];
        if (!d.moved && Math.hypot(dx, dy) * this.r.ds.scale < 3) return;
        d.moved = true;
        const grid = this.app.snap || { always: false, size: 10 };
        const snap = grid.always || (e.shiftKey && !d.shift) ? grid.size : 1;
        d.ids.forEach((id, i) => {
          const n = getNode(graph, id);
          if (!n) return;
          n.pos = [Math.round((d.orig[i][0] + dx) / snap) * snap, Math.round((d.orig[i][1] + dy) / snap) * snap];
        });
        break;
      }
      case "resize": {
        const n = getNode(graph, d.node);
        if (!n) break;
        const lay = this.layout(n);
        const g = this.app.snap && this.app.snap.always ? this.app.snap.size : 1;
        const snapped = (v) => Math.round(v / g) * g;
        n.size = [Math.max(120, snapped(d.orig[0] + wx - d.start[0])), Math.max(lay.minH || 0, snapped(d.orig[1] + wy - d.start[1]))];
        break;
      }
      case "group-move": {
        const g = graph.groups[d.idx];
        const dx = Math.round(wx - d.start[0]), dy = Math.round(wy - d.start[1]);
        g.bounding = [d.orig[0] + dx, d.orig[1] + dy, d.orig[2], d.orig[3]];
        d.nodes.forEach((id, i) => {
          const n = getNode(graph, id);
          if (n) n.pos = [d.origPos[i][0] + dx, d.origPos[i][1] + dy];
        });
        break;
      }
      case "group-resize": {
        const g = graph.groups[d.idx];
        g.bounding = [d.orig[0], d.orig[1], Math.max(120, Math.round(d.orig[2] + wx - d.start[0])), Math.max(80, Math.round(d.orig[3] + wy - d.start[1]))];
        break;
      }
      case "link":
        d.pos = [wx, wy];
        break;
      case "number":
        if (!this.widgets.dragNumber(d, sx)) return;
        break;
      default:
        break;
    }
    this.r.requestRender();
  }

  onUp(e) {
    const d = this.drag;
    if (!d) return;
    this.drag = null;
    this.canvas.style.cursor = "";
    const app = this.app;
    const [sx, sy] = this.local(e);
    const [wx, wy] = this.r.toWorld(sx, sy);
    switch (d.kind) {
      case "pan":
        app.persistSoon();
        break;
      case "box":
        this.updateBox(d);
        break;
      case "move":
        if (!d.moved && !d.shift && !(e.ctrlKey || e.metaKey)) app.setSelection([d.clickNode]);
        app.history.commit();
        app.changed();
        if (!d.moved && d.image >= 0 && app.viewer) app.viewer.openForNode(getNode(this.graph, d.clickNode), d.image);
        break;
      case "resize":
      case "group-move":
      case "group-resize":
        app.history.commit();
        app.changed();
        break;
      case "link":
        this.wiring.finish(d, wx, wy, sx, sy);
        break;
      case "number":
        this.widgets.releaseNumber(d);
        break;
      default:
        break;
    }
    this.r.requestRender();
  }

  updateBox(d) {
    const [x0, x1] = [Math.min(d.start[0], d.end[0]), Math.max(d.start[0], d.end[0])];
    const [y0, y1] = [Math.min(d.start[1], d.end[1]), Math.max(d.start[1], d.end[1])];
    const ids = new Set(d.additive ? d.base : []);
    for (const n of this.graph.nodes) {
      const lay = this.layout(n);
      const top = n.pos[1] - (lay.reroute ? 0 : TITLE_H);
      if (n.pos[0] < x1 && n.pos[0] + lay.w > x0 && top < y1 && n.pos[1] + lay.h > y0) ids.add(n.id);
    }
    this.app.setSelection([...ids]);
  }

  onWheel(e) {
    e.preventDefault();
    const [sx, sy] = this.local(e);
    const ds = this.r.ds;
    // Firefox may report lines or pages instead of pixels
    const unit = e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? 800 : 1;
    const dy = e.deltaY * unit;
    if (e.ctrlKey || !this.app.settings.trackpadPan || Math.abs(dy) >= 50 || e.deltaMode) {
      const factor = Math.exp(-Math.sign(dy) * Math.min(Math.abs(dy), 120) / 600);
      this.zoomAt(sx, sy, ds.scale * factor);
    } else {
      ds.offset = [ds.offset[0] - (e.deltaX * unit) / ds.scale, ds.offset[1] - dy / ds.scale];
    }
    this.app.viewChanged();
  }

  zoomAt(sx, sy, scale) {
    const ds = this.r.ds;
    scale = Math.min(4, Math.max(0.08, scale));
    const [wx, wy] = this.r.toWorld(sx, sy);
    ds.scale = scale;
    ds.offset = [sx / scale - wx, sy / scale - wy];
    this.r.requestRender();
  }

  onDblClick(e) {
    const [sx, sy] = this.local(e);
    const [wx, wy] = this.r.toWorld(sx, sy);
    const h = this.hit(wx, wy);
    if (!h) {
      this.app.openSearch(e.clientX, e.clientY, [wx, wy]);
      return;
    }
    if (h.part === "title") this.widgets.renameNode(h.node);
    else if (h.part === "group-title") this.widgets.renameGroup(h.group);
    else if (h.part === "body" && h.node && this.imageAt(h.node, wx, wy) >= 0 && this.app.viewer && !this.app.viewer.isOpen) {
      this.app.viewer.openForNode(h.node, this.imageAt(h.node, wx, wy));
    }
  }

  showTooltip(h, sx, sy) {
    clearTimeout(this.tipTimer);
    const tip = this.tooltipEl || (this.tooltipEl = Object.assign(document.createElement("div"), { className: "tooltip" }));
    tip.hidden = true;
    if (!h || !h.node) return;
    const def = this.app.defFor(h.node);
    if (!def) return;
    let text = "";
    if (h.part === "title") text = def.description;
    else if (h.part === "widget") {
      const value = h.node.widgets_values[h.widget.name];
      text = (h.widget.spec.opts && h.widget.spec.opts.tooltip) || "";
      if (h.widget.kind === "combo" && !comboHas(h.widget.spec, value)) text = missingNote(h.node, h.widget.spec, value);
    }
    else if (h.part === "input") {
      const spec = def.inputs.find((i) => i.name === h.node.inputs[h.slot].name);
      text = spec && spec.opts && spec.opts.tooltip ? spec.opts.tooltip : "";
    }
    if (!text) return;
    const rect = this.canvas.getBoundingClientRect();
    this.tipTimer = setTimeout(() => {
      tip.textContent = text;
      tip.style.left = `${rect.left + sx + 14}px`;
      tip.style.top = `${rect.top + sy + 18}px`;
      if (!tip.isConnected) document.body.appendChild(tip);
      tip.hidden = false;
    }, 600);
  }

  /** Hide the node tooltip, and forget one about to show (the pointer left, the tab changed). */
  hideTooltip() {
    clearTimeout(this.tipTimer);
    this.tipKey = null;
    if (this.tooltipEl) this.tooltipEl.hidden = true;
  }

  updateCursor(sx, sy) {
    const [wx, wy] = this.r.toWorld(sx, sy);
    const h = this.hit(wx, wy);
    const key = h ? `${h.node ? h.node.id : "g"}:${h.part}:${h.slot ?? ""}:${h.widget ? h.widget.name : ""}` : "";
    if (key !== this.tipKey) {
      this.tipKey = key;
      this.showTooltip(h, sx, sy);
    }
    let c = "";
    if (h) {
      if (h.part === "input" || h.part === "output") c = "crosshair";
      else if (h.part === "resize" || h.part === "group-resize") c = "nwse-resize";
      else if (h.part === "widget") c = h.widget.kind === "number" ? "ew-resize" : "pointer";
      else if (h.part === "title" || h.part === "group-title") c = "move";
    }
    this.canvas.style.cursor = c;
  }

  // ---- keyboard -----------------------------------------------------------------------

  onKey(e) {
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
    const app = this.app;
    const mod = e.ctrlKey || e.metaKey;
    const k = e.key.toLowerCase();
    if (e.code === "Space" && !mod) {
      this.spaceDown = true;
      e.preventDefault();
      return;
    }
    // the commands that can be rebound (keybindings.js: ComfyUI's ids and defaults) first
    if (app.keybindings && app.keybindings.handle(e)) {
      e.preventDefault();
      return;
    }
    const [wx, wy] = this.r.toWorld(...this.mouse);
    let handled = true;
    if (mod && k === "z" && !e.shiftKey) app.undo();
    else if (mod && (k === "y" || (k === "z" && e.shiftKey))) app.redo();
    else if (mod && k === "c") app.copy();
    else if (mod && k === "v") app.paste([wx, wy], e.shiftKey);
    else if (mod && k === "x") {
      app.copy();
      app.deleteSelection();
    } else if (mod && k === "d") app.duplicate();
    else if (mod && k === "a") app.setSelection(this.graph.nodes.map((n) => n.id));
    else if (!mod && (k === "delete" || k === "backspace")) app.deleteSelection();
    else if (!mod && (k === "/" || (k === "a" && e.shiftKey))) {
      const rect = this.canvas.getBoundingClientRect();
      app.openSearch(rect.left + this.mouse[0], rect.top + this.mouse[1], [wx, wy]);
    } else if (!mod && k === "?") app.showShortcuts();
    else if (!mod && k === "escape") {
      if (!closeOverlays(app)) app.setSelection([]); // the first Escape closes what floats over the canvas
    } else handled = false;
    if (handled) e.preventDefault();
  }

  // ---- overlay ------------------------------------------------------------------------

  drawOverlay(ctx, scale) {
    const d = this.drag;
    if (!d) return;
    if (d.kind === "link") {
      const node = getNode(this.graph, d.node);
      if (!node) return;
      const lay = this.layout(node);
      const [x1, y1] = d.from === "output" ? outputPos(node, d.slot, lay) : inputPos(node, d.slot, lay);
      const [x2, y2] = d.pos;
      const dir = d.from === "output" ? 1 : -1;
      const dx = Math.max(40, Math.abs(x2 - x1) * 0.5);
      ctx.strokeStyle = this.app.typeColor(d.type);
      ctx.lineWidth = 3;
      ctx.setLineDash([8, 5]);
      ctx.beginPath();
      ctx.moveTo(x1, y1);
      ctx.bezierCurveTo(x1 + dx * dir, y1, x2 - dx * dir, y2, x2, y2);
      ctx.stroke();
      ctx.setLineDash([]);
    } else if (d.kind === "box") {
      ctx.strokeStyle = "#8ab4ff";
      ctx.fillStyle = "rgba(138,180,255,0.08)";
      ctx.lineWidth = 1 / scale;
      const x = Math.min(d.start[0], d.end[0]), y = Math.min(d.start[1], d.end[1]);
      ctx.fillRect(x, y, Math.abs(d.end[0] - d.start[0]), Math.abs(d.end[1] - d.start[1]));
      ctx.strokeRect(x, y, Math.abs(d.end[0] - d.start[0]), Math.abs(d.end[1] - d.start[1]));
    }
  }
}

