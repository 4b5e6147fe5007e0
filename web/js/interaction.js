// Mouse, wheel and keyboard on the canvas: select, move, wire, pan, zoom, box select,
// groups, widgets (drag numbers, edit text, pick combos), context menus.

import {
  MODE_ALWAYS, MODE_BYPASS, MODE_MUTED, connect, convertInputToWidget, convertWidgetToInput, effectiveOutputType,
  getNode, linkInto, linksFrom, removeLink, removeNode, touch, typesCompatible,
} from "./state.js";
import { CONTROL_MODES } from "./serialize.js";
import { TITLE_H, formatNumber, inputPos, outputPos } from "./render.js";
import { showMenu, closeMenus } from "./menu.js";

const SOCKET_R = 11;

export class Interaction {
  constructor(app, canvas) {
    this.app = app;
    this.canvas = canvas;
    this.drag = null;
    this.mouse = [0, 0]; // screen (canvas) coords
    this.spaceDown = false;
    this.activeWidget = null;
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
    canvas.addEventListener("contextmenu", (e) => this.onContextMenu(e));
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

  orderedNodes() {
    // topmost first: selected nodes are drawn last, so they are hit first
    const sel = this.app.selection;
    const nodes = this.graph.nodes;
    const out = [];
    for (let i = nodes.length - 1; i >= 0; i--) if (sel.has(nodes[i].id)) out.push(nodes[i]);
    for (let i = nodes.length - 1; i >= 0; i--) if (!sel.has(nodes[i].id)) out.push(nodes[i]);
    return out;
  }

  layout(node) {
    // always fresh: the last frame's layouts may predate an edit not yet drawn
    return this.r.layout(node);
  }

  hit(wx, wy) {
    const tol = SOCKET_R / Math.max(0.5, this.r.ds.scale);
    for (const node of this.orderedNodes()) {
      // quick reject on the last frame's geometry (generous margin), then the exact layout
      const cached = this.r.layouts.get(node.id);
      if (cached && (wx < node.pos[0] - 80 || wx > node.pos[0] + cached.w + 80 || wy < node.pos[1] - 80 || wy > node.pos[1] + cached.h + 300)) continue;
      const lay = this.layout(node);
      const top = lay.reroute ? node.pos[1] : node.pos[1] - TITLE_H;
      const bottom = lay.collapsed ? node.pos[1] : node.pos[1] + lay.h;
      if (wx < node.pos[0] - tol || wx > node.pos[0] + lay.w + tol || wy < top - 4 || wy > bottom + 4) continue;
      // sockets
      for (let i = 0; i < node.inputs.length; i++) {
        const [sx, sy] = inputPos(node, i, lay);
        if (Math.abs(wx - sx) < tol && Math.abs(wy - sy) < Math.max(tol * 0.9, 10)) return { node, part: "input", slot: i };
      }
      for (let i = 0; i < node.outputs.length; i++) {
        const [sx, sy] = outputPos(node, i, lay);
        if (Math.abs(wx - sx) < tol && Math.abs(wy - sy) < Math.max(tol * 0.9, 10)) return { node, part: "output", slot: i };
      }
      if (wx < node.pos[0] || wx > node.pos[0] + lay.w || wy < top || wy > bottom) continue;
      if (lay.reroute) return { node, part: "body" };
      if (wy < node.pos[1]) {
        if (wx < node.pos[0] + 24) return { node, part: "collapse" };
        return { node, part: "title" };
      }
      const lx = wx - node.pos[0], ly = wy - node.pos[1];
      if (lx > lay.w - 14 && ly > lay.h - 14) return { node, part: "resize" };
      for (const wd of lay.widgets) {
        if (lx >= wd.x && lx <= wd.x + wd.w && ly >= wd.y && ly <= wd.y + wd.h) return { node, part: "widget", widget: wd, lx: lx - wd.x };
      }
      // input label area counts as the socket for easy wiring
      const rowSlot = Math.floor((ly - 6) / 22);
      if (lx < 60 && rowSlot >= 0 && rowSlot < node.inputs.length) return { node, part: "input", slot: rowSlot };
      if (lx > lay.w - 60 && rowSlot >= 0 && rowSlot < node.outputs.length) return { node, part: "output", slot: rowSlot };
      return { node, part: "body" };
    }
    for (let i = this.graph.groups.length - 1; i >= 0; i--) {
      const g = this.graph.groups[i];
      const [x, y, w, h] = g.bounding;
      if (wx >= x + w - 16 && wx <= x + w + 2 && wy >= y + h - 16 && wy <= y + h + 2) return { group: g, part: "group-resize" };
      if (wx >= x && wx <= x + w && wy >= y && wy <= y + 36) return { group: g, part: "group-title" };
    }
    return null;
  }

  linkAt(wx, wy) {
    const graph = this.graph;
    const tol = 8 / this.r.ds.scale;
    for (const link of graph.links) {
      const o = getNode(graph, link.origin_id), t = getNode(graph, link.target_id);
      if (!o || !t) continue;
      const [x1, y1] = outputPos(o, link.origin_slot, this.layout(o));
      const [x2, y2] = inputPos(t, link.target_slot, this.layout(t));
      const dx = Math.max(40, Math.abs(x2 - x1) * 0.5);
      for (let i = 0; i <= 24; i++) {
        const s = i / 24, u = 1 - s;
        const px = u * u * u * x1 + 3 * u * u * s * (x1 + dx) + 3 * u * s * s * (x2 - dx) + s * s * s * x2;
        const py = u * u * u * y1 + 3 * u * u * s * y1 + 3 * u * s * s * y2 + s * s * s * y2;
        if (Math.abs(px - wx) < tol && Math.abs(py - wy) < tol) return { link, point: [px, py] };
      }
    }
    return null;
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
    if (this.app.minimapHit && this.app.minimapHit(e)) return;
    const h = this.hit(wx, wy);
    const app = this.app;
    if (!h) {
      app.selectedGroup = null;
      if (e.ctrlKey || e.shiftKey || e.metaKey) {
        this.drag = { kind: "box", start: [wx, wy], end: [wx, wy], additive: e.shiftKey, base: new Set(app.selection) };
      } else {
        if (app.selection.size) app.setSelection([]);
        this.startPan(sx, sy);
      }
      this.r.requestRender();
      return;
    }
    if (h.group) {
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
      return;
    }
    app.selectedGroup = null;
    const node = h.node;
    if (h.part === "output") {
      this.startLinkDrag({ from: "output", node: node.id, slot: h.slot, type: effectiveOutputType(this.graph, node, h.slot) }, wx, wy);
      return;
    }
    if (h.part === "input") {
      const existing = linkInto(this.graph, node.id, h.slot);
      app.history.begin("Connect");
      if (existing) {
        // pick the link up from its input: drag it on from its origin
        removeLink(this.graph, existing.id);
        const origin = getNode(this.graph, existing.origin_id);
        this.drag = { kind: "link", from: "output", node: origin.id, slot: existing.origin_slot, type: effectiveOutputType(this.graph, origin, existing.origin_slot), pos: [wx, wy], started: true };
      } else {
        this.drag = { kind: "link", from: "input", node: node.id, slot: h.slot, type: node.inputs[h.slot].type, pos: [wx, wy], started: true };
      }
      this.r.requestRender();
      return;
    }
    if (h.part === "collapse") {
      app.cmd(node.collapsed ? "Expand node" : "Collapse node", () => {
        node.collapsed = !node.collapsed;
        if (!node.collapsed) delete node.collapsed;
      });
      return;
    }
    if (h.part === "resize") {
      app.history.begin("Resize node");
      this.drag = { kind: "resize", node: node.id, start: [wx, wy], orig: [this.layout(node).w, this.layout(node).h] };
      return;
    }
    if (h.part === "widget" && !h.widget.readonly && !e.shiftKey) {
      if (!app.selection.has(node.id)) app.setSelection([node.id]);
      this.widgetDown(node, h.widget, h.lx, wx, wy, e);
      return;
    }
    // select / move
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
        const snap = e.shiftKey && !d.shift ? 10 : 1;
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
        n.size = [Math.max(120, Math.round(d.orig[0] + wx - d.start[0])), Math.max(lay.minH || 0, Math.round(d.orig[1] + wy - d.start[1]))];
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
      case "number": {
        const dx = sx - d.startX;
        if (!d.moved && Math.abs(dx) < 3) return;
        d.moved = true;
        const node = getNode(graph, d.node);
        const spec = d.widget.spec;
        const step = numberStep(spec);
        const steps = Math.round(dx / (spec.type === "INT" ? 6 : 4));
        node.widgets_values[d.widget.name] = clampNumber(d.orig + steps * step, spec);
        break;
      }
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
        break;
      case "resize":
      case "group-move":
      case "group-resize":
        app.history.commit();
        app.changed();
        break;
      case "link":
        this.finishLink(d, wx, wy, sx, sy, e);
        break;
      case "number": {
        const node = getNode(this.graph, d.node);
        if (!d.moved && node) {
          const x = d.lx;
          const wd = d.widget;
          if (x < 20 || x > wd.w - 20) {
            node.widgets_values[wd.name] = clampNumber(d.orig + (x < 20 ? -1 : 1) * numberStep(wd.spec), wd.spec);
            app.history.commit();
            app.changed();
          } else {
            app.history.commit();
            this.editWidgetText(node, wd);
          }
        } else {
          app.history.commit();
          app.changed();
        }
        this.activeWidget = null;
        break;
      }
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

  finishLink(d, wx, wy, sx, sy, e) {
    const app = this.app;
    const graph = this.graph;
    const h = this.hit(wx, wy);
    let done = false;
    if (h && h.node && h.node.id !== d.node) {
      const node = h.node;
      if (d.from === "output") {
        let slot = h.part === "input" ? h.slot : -1;
        if (slot < 0 || !typesCompatible(d.type, node.inputs[slot].type)) {
          slot = -1;
          if (h.part !== "input") {
            const free = node.inputs.findIndex((inp, i) => typesCompatible(d.type, inp.type) && !linkInto(graph, node.id, i));
            slot = free >= 0 ? free : node.inputs.findIndex((inp) => typesCompatible(d.type, inp.type));
            if (slot < 0 && h.part === "widget") {
              // dropping on a widget of a matching type converts it to an input
              const def = app.defFor(node);
              if (def && typesCompatible(d.type, h.widget.spec.type) && h.widget.kind !== "control" && h.widget.kind !== "upload") {
                convertWidgetToInput(graph, node, def, h.widget.name);
                slot = node.inputs.length - 1;
              }
            }
          }
        }
        if (slot >= 0) done = !!connect(graph, d.node, d.slot, node.id, slot);
        else app.toast(`${node.title || node.type} has no input that takes ${d.type}`, "warn");
      } else {
        let slot = h.part === "output" ? h.slot : -1;
        if (slot < 0 || !typesCompatible(effectiveOutputType(graph, node, slot), d.type)) {
          slot = h.part === "output" ? -1 : node.outputs.findIndex((o, i) => typesCompatible(effectiveOutputType(graph, node, i), d.type));
        }
        if (slot >= 0) done = !!connect(graph, node.id, slot, d.node, d.slot);
        else app.toast(`${node.title || node.type} has no output of type ${d.type}`, "warn");
      }
      if (!done && h.part === (d.from === "output" ? "input" : "output")) {
        const other = d.from === "output" ? node.inputs[h.slot].type : effectiveOutputType(graph, node, h.slot);
        app.toast(`Cannot connect ${d.from === "output" ? d.type : other} to ${d.from === "output" ? other : d.type}`, "warn");
      }
      app.history.commit();
      app.changed();
      return;
    }
    if (!h) {
      // released in empty space: offer only nodes that fit
      const rect = this.canvas.getBoundingClientRect();
      const filter = { from: d.from, type: d.type };
      app.search.onCancel = () => {
        app.history.commit();
        app.changed();
      };
      app.search.open(rect.left + sx, rect.top + sy, {
        filter,
        onPick: (def) => {
          const node = app.addNodeRaw(def, [wx, wy]);
          if (d.from === "output") {
            const slot = node.inputs.findIndex((inp) => typesCompatible(d.type, inp.type));
            if (slot >= 0) connect(graph, d.node, d.slot, node.id, slot);
            else {
              const spec = def.inputs.find((i) => i.widget && typesCompatible(d.type, i.type));
              if (spec) {
                convertWidgetToInput(graph, node, def, spec.name);
                connect(graph, d.node, d.slot, node.id, node.inputs.length - 1);
              }
            }
          } else {
            node.pos = [Math.round(wx - node.size[0]), Math.round(wy - 20)];
            const slot = node.outputs.findIndex((o) => typesCompatible(o.type, d.type));
            if (slot >= 0) connect(graph, node.id, slot, d.node, d.slot);
          }
          app.setSelection([node.id]);
          app.history.commit();
          app.changed();
        },
      });
      return;
    }
    app.history.commit();
    app.changed();
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
    if (h.part === "title") this.renameNode(h.node);
    else if (h.part === "group-title") this.renameGroup(h.group);
    else if (h.part === "body" && h.node) {
      const urls = this.app.imageUrls(h.node);
      const lay = this.layout(h.node);
      if (urls.length && lay.image && wy - h.node.pos[1] >= lay.image.y) window.open(urls[0], "_blank", "noopener");
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
    else if (h.part === "widget") text = (h.widget.spec.opts && h.widget.spec.opts.tooltip) || "";
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

  // ---- widgets ------------------------------------------------------------------------

  widgetDown(node, wd, lx, wx, wy, e) {
    const app = this.app;
    const [sx] = this.mouse;
    const edge = lx < 20 ? -1 : lx > wd.w - 20 ? 1 : 0;
    switch (wd.kind) {
      case "number":
        app.history.begin(`Set ${wd.name}`);
        this.activeWidget = { node: node.id, name: wd.name };
        this.drag = { kind: "number", node: node.id, widget: wd, startX: sx, orig: Number(node.widgets_values[wd.name]) || 0, lx, moved: false };
        break;
      case "toggle":
        app.cmd(`Set ${wd.name}`, () => {
          node.widgets_values[wd.name] = !node.widgets_values[wd.name];
        });
        break;
      case "combo": {
        const choices = wd.spec.choices || [];
        if (edge && choices.length) {
          const i = choices.indexOf(node.widgets_values[wd.name]);
          const next = choices[Math.min(choices.length - 1, Math.max(0, (i < 0 ? 0 : i) + edge))];
          app.cmd(`Set ${wd.name}`, () => {
            node.widgets_values[wd.name] = next;
          });
        } else this.openCombo(node, wd, choices, node.widgets_values[wd.name], (v) => {
          app.cmd(`Set ${wd.name}`, () => {
            node.widgets_values[wd.name] = v;
          });
        });
        break;
      }
      case "control": {
        const cur = (node.properties.control || {})[wd.target];
        const set = (v) => app.cmd("Set control after generate", () => {
          node.properties.control = { ...(node.properties.control || {}), [wd.target]: v };
        });
        if (edge) set(CONTROL_MODES[(CONTROL_MODES.indexOf(cur) + edge + CONTROL_MODES.length) % CONTROL_MODES.length]);
        else this.openCombo(node, wd, CONTROL_MODES, cur, set);
        break;
      }
      case "upload":
        // the file dialog opens on the click that follows (a dependable user activation)
        this.pendingUpload = { node, name: wd.target };
        break;
      case "text":
      case "multiline":
        this.editWidgetText(node, wd);
        break;
      default:
        break;
    }
    this.r.requestRender();
  }

  widgetScreenRect(node, wd) {
    const rect = this.canvas.getBoundingClientRect();
    const [x, y] = this.r.toScreen(node.pos[0] + wd.x, node.pos[1] + wd.y);
    const s = this.r.ds.scale;
    return { left: rect.left + x, top: rect.top + y, width: wd.w * s, height: wd.h * s };
  }

  editWidgetText(node, wd) {
    const app = this.app;
    const r = this.widgetScreenRect(node, wd);
    const multiline = wd.kind === "multiline";
    const el = document.createElement(multiline ? "textarea" : "input");
    el.className = "widget-editor";
    el.dataset.node = String(node.id);
    el.dataset.widget = wd.name;
    const value = node.widgets_values[wd.name];
    el.value = wd.kind === "number" ? formatNumber(value, wd.spec) : String(value ?? "");
    el.spellcheck = false;
    const scale = Math.max(1, this.r.ds.scale);
    Object.assign(el.style, {
      left: `${r.left}px`, top: `${r.top}px`, width: `${Math.max(r.width, 160)}px`,
      height: multiline ? `${Math.max(r.height, 120)}px` : `${Math.max(r.height, 26)}px`, fontSize: `${Math.round(12 * Math.min(scale, 1.6))}px`,
    });
    document.body.appendChild(el);
    el.focus();
    el.select && !multiline && el.select();
    this.activeWidget = { node: node.id, name: wd.name };
    let closed = false;
    const finish = (save) => {
      if (closed) return;
      closed = true;
      const v = el.value;
      el.remove();
      this.activeWidget = null;
      if (save) {
        let nv = v;
        if (wd.kind === "number") {
          nv = evalNumber(v);
          if (nv === null) {
            app.toast(`"${v}" is not a number`, "warn");
            return;
          }
          nv = clampNumber(nv, wd.spec);
        }
        app.cmd(`Set ${wd.name}`, () => {
          node.widgets_values[wd.name] = nv;
        });
      }
      this.r.requestRender();
    };
    el.addEventListener("keydown", (ev) => {
      ev.stopPropagation();
      if (ev.key === "Escape") finish(false);
      else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        // as in ComfyUI: Ctrl+Enter queues, also from a prompt being typed
        ev.preventDefault();
        finish(true);
        app.queue(ev.shiftKey);
      } else if (ev.key === "Enter" && !multiline) {
        ev.preventDefault();
        finish(true);
      }
    });
    el.addEventListener("blur", () => finish(true));
    app.editorClosers.add(() => finish(true));
  }

  openCombo(node, wd, choices, current, onPick) {
    const r = this.widgetScreenRect(node, wd);
    const items = choices.map((c) => ({ label: String(c), value: c, checked: c === current }));
    showMenu(r.left, r.top + r.height, items.map((it) => ({ label: it.label, checked: it.checked, action: () => onPick(it.value) })), { filter: choices.length > 8, className: "combo-menu", minWidth: r.width });
  }

  renameNode(node) {
    const app = this.app;
    const def = app.defFor(node);
    const [sx, sy] = this.r.toScreen(node.pos[0], node.pos[1] - TITLE_H);
    const rect = this.canvas.getBoundingClientRect();
    this.inlineInput(rect.left + sx + 24, rect.top + sy + 3, node.title || (def ? def.display_name : node.type), (v) => {
      app.cmd("Rename node", () => {
        if (v && (!def || v !== def.display_name)) node.title = v;
        else delete node.title;
      });
    });
  }

  renameGroup(group) {
    const app = this.app;
    const [sx, sy] = this.r.toScreen(group.bounding[0], group.bounding[1]);
    const rect = this.canvas.getBoundingClientRect();
    this.inlineInput(rect.left + sx + 6, rect.top + sy + 4, group.title, (v) => app.cmd("Rename group", () => {
      group.title = v || "Group";
    }));
  }

  inlineInput(x, y, value, onDone) {
    const el = document.createElement("input");
    el.className = "widget-editor";
    el.value = value;
    Object.assign(el.style, { left: `${x}px`, top: `${y}px`, width: "240px", height: "26px" });
    document.body.appendChild(el);
    el.focus();
    el.select();
    let closed = false;
    const finish = (save) => {
      if (closed) return;
      closed = true;
      el.remove();
      if (save) onDone(el.value.trim());
    };
    el.addEventListener("keydown", (ev) => {
      ev.stopPropagation();
      if (ev.key === "Enter") finish(true);
      if (ev.key === "Escape") finish(false);
    });
    el.addEventListener("blur", () => finish(true));
    this.app.editorClosers.add(() => finish(true));
  }

  // ---- context menus ------------------------------------------------------------------

  onContextMenu(e) {
    e.preventDefault();
    const app = this.app;
    const [sx, sy] = this.local(e);
    const [wx, wy] = this.r.toWorld(sx, sy);
    const h = this.hit(wx, wy);
    const graph = this.graph;
    if (h && h.node) {
      const node = h.node;
      if (!app.selection.has(node.id)) app.setSelection([node.id]);
      const def = app.defFor(node);
      const items = [];
      if (h.part === "input" && linkInto(graph, node.id, h.slot)) {
        items.push({ label: "Disconnect input", action: () => app.cmd("Disconnect", () => removeLink(graph, linkInto(graph, node.id, h.slot).id)) });
      }
      if (h.part === "output" && linksFrom(graph, node.id, h.slot).length) {
        items.push({ label: "Disconnect output", action: () => app.cmd("Disconnect", () => linksFrom(graph, node.id, h.slot).forEach((l) => removeLink(graph, l.id))) });
      }
      const images = app.imageUrls(node);
      if (images.length) {
        items.push({ label: "Open image", action: () => window.open(images[0], "_blank", "noopener") });
        items.push({ label: "Save image", action: () => {
          const a = document.createElement("a");
          a.href = images[0];
          a.download = new URL(images[0], location.href).searchParams.get("filename") || "image.png";
          document.body.appendChild(a);
          a.click();
          a.remove();
        } }, { separator: true });
      }
      items.push(
        { label: "Rename", action: () => this.renameNode(node) },
        { label: node.mode === MODE_BYPASS ? "Remove bypass" : "Bypass", shortcut: "Ctrl+B", action: () => app.toggleMode(MODE_BYPASS) },
        { label: node.mode === MODE_MUTED ? "Unmute" : "Mute", shortcut: "Ctrl+M", action: () => app.toggleMode(MODE_MUTED) },
        { label: node.collapsed ? "Expand" : "Collapse", action: () => app.cmd("Collapse node", () => { node.collapsed = !node.collapsed; if (!node.collapsed) delete node.collapsed; }) },
        { label: "Duplicate", shortcut: "Ctrl+D", action: () => app.duplicate() },
        { label: "Copy", shortcut: "Ctrl+C", action: () => app.copy() },
      );
      if (def) {
        const convertible = def.inputs.filter((i) => i.widget);
        const toInput = convertible.filter((i) => !node.inputs.some((s) => s.widget === i.name));
        const toWidget = node.inputs.filter((s) => s.widget);
        if (toInput.length || toWidget.length) items.push({ separator: true });
        for (const i of toInput) {
          items.push({ label: `Convert ${i.name} to input`, action: () => app.cmd(`Convert ${i.name} to input`, () => convertWidgetToInput(graph, node, def, i.name)) });
        }
        for (const s of toWidget) {
          items.push({ label: `Convert ${s.widget} to widget`, action: () => app.cmd(`Convert ${s.widget} to widget`, () => convertInputToWidget(graph, node, s.widget)) });
        }
      }
      items.push({ separator: true });
      const colors = { red: "#5a2a2a", green: "#2a4a2a", blue: "#2a3a5a", purple: "#4a2a5a", yellow: "#5a5a2a", none: null };
      for (const [name, c] of Object.entries(colors)) {
        items.push({ label: `Colour: ${name}`, action: () => app.cmd("Colour node", () => { for (const id of app.selection) { const n = getNode(graph, id); if (!n) continue; if (c) n.bgcolor = c; else delete n.bgcolor; } }) });
      }
      items.push({ separator: true }, { label: "Remove", shortcut: "Del", action: () => app.deleteSelection() });
      showMenu(e.clientX, e.clientY, items);
      return;
    }
    if (h && h.group) {
      const g = h.group;
      showMenu(e.clientX, e.clientY, [
        { label: "Rename group", action: () => this.renameGroup(g) },
        { label: "Fit group to nodes", action: () => app.fitGroup(g) },
        ...Object.entries({ blue: "#3f789e", green: "#4a7a4a", red: "#8a4b4b", purple: "#6e4a8a", yellow: "#8a7a3a", grey: "#5a5d63" })
          .map(([name, c]) => ({ label: `Colour: ${name}`, checked: g.color === c, action: () => app.cmd("Colour group", () => { g.color = c; }) })),
        { label: "Remove group", action: () => app.cmd("Remove group", () => { graph.groups.splice(graph.groups.indexOf(g), 1); }) },
      ]);
      return;
    }
    const onLink = this.linkAt(wx, wy);
    if (onLink) {
      showMenu(e.clientX, e.clientY, [
        { label: "Add reroute", action: () => app.insertReroute(onLink.link, onLink.point) },
        { label: "Delete link", action: () => app.cmd("Delete link", () => removeLink(graph, onLink.link.id)) },
      ]);
      return;
    }
    showMenu(e.clientX, e.clientY, [
      { label: "Add node…", shortcut: "dbl-click", action: () => app.openSearch(e.clientX, e.clientY, [wx, wy]) },
      { label: "Browse nodes by category ▸", action: () => this.categoryMenu(e.clientX, e.clientY, [wx, wy], "") },
      { label: "Add group", action: () => app.addGroup([wx, wy]) },
      { label: "Add group for selected nodes", shortcut: "Ctrl+G", disabled: !app.selection.size, action: () => app.groupSelection() },
      { label: "Add reroute", action: () => app.addNodeByType("Reroute", [wx, wy]) },
      { label: "Add note", action: () => app.addNodeByType("Note", [wx, wy]) },
      { separator: true },
      { label: "Paste", shortcut: "Ctrl+V", action: () => app.paste([wx, wy]) },
      { label: "Select all", shortcut: "Ctrl+A", action: () => app.setSelection(graph.nodes.map((n) => n.id)) },
      { label: "Fit view", shortcut: ".", action: () => app.fitView() },
    ]);
  }

  /** A menu of one level of the category tree: sub-categories first, then its nodes. */
  categoryMenu(x, y, pos, prefix) {
    const app = this.app;
    const subs = new Set();
    const here = [];
    for (const def of Object.values(app.defs)) {
      const cat = def.category || "misc";
      if (prefix && cat !== prefix && !cat.startsWith(`${prefix}/`)) continue;
      if (cat === prefix || (!prefix && !cat)) here.push(def);
      else subs.add((prefix ? cat.slice(prefix.length + 1) : cat).split("/")[0]);
    }
    const items = [];
    if (prefix) {
      const up = prefix.includes("/") ? prefix.slice(0, prefix.lastIndexOf("/")) : "";
      items.push({ label: "◂ back", action: () => this.categoryMenu(x, y, pos, up) }, { separator: true });
    }
    for (const sub of [...subs].sort()) {
      const full = prefix ? `${prefix}/${sub}` : sub;
      items.push({ label: `${sub} ▸`, action: () => this.categoryMenu(x, y, pos, full) });
    }
    if (subs.size && here.length) items.push({ separator: true });
    for (const def of here.sort((a, b) => a.display_name.localeCompare(b.display_name))) {
      items.push({ label: def.display_name, action: () => app.addNode(def.name, pos) });
    }
    showMenu(x, y, items, { filter: items.length > 14, className: "category-menu" });
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
    const [wx, wy] = this.r.toWorld(...this.mouse);
    let handled = true;
    if (mod && k === "enter") app.queue(e.shiftKey);
    else if (mod && k === "z" && !e.shiftKey) app.undo();
    else if (mod && (k === "y" || (k === "z" && e.shiftKey))) app.redo();
    else if (mod && k === "c") app.copy();
    else if (mod && k === "v") app.paste([wx, wy], e.shiftKey);
    else if (mod && k === "x") {
      app.copy();
      app.deleteSelection();
    } else if (mod && k === "d") app.duplicate();
    else if (mod && k === "a") app.setSelection(this.graph.nodes.map((n) => n.id));
    else if (mod && k === "b") app.toggleMode(MODE_BYPASS);
    else if (mod && k === "m") app.toggleMode(MODE_MUTED);
    else if (mod && k === "g") app.groupSelection();
    else if (mod && k === "s") app.saveFile();
    else if (mod && k === "o") app.openFile();
    else if (!mod && (k === "delete" || k === "backspace")) app.deleteSelection();
    else if (!mod && (k === "/" || (k === "a" && e.shiftKey))) {
      const rect = this.canvas.getBoundingClientRect();
      app.openSearch(rect.left + this.mouse[0], rect.top + this.mouse[1], [wx, wy]);
    } else if (!mod && k === ".") app.fitView();
    else if (!mod && k === "?") app.showShortcuts();
    else if (!mod && k === "r") app.refreshDefs().then(() => app.toast("Node list refreshed (new models and files)", "info", 1500));
    else if (!mod && k === "escape") {
      closeMenus();
      app.setSelection([]);
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

export function numberStep(spec) {
  const o = spec.opts || {};
  if (spec.type === "INT") return Math.max(1, Math.round(o.step || 1));
  return o.step || 0.01;
}

export function clampNumber(v, spec) {
  const o = spec.opts || {};
  if (!Number.isFinite(v)) v = 0;
  if (Number.isFinite(o.min)) v = Math.max(o.min, v);
  if (Number.isFinite(o.max)) v = Math.min(o.max, v);
  if (spec.type === "INT") return Math.round(v);
  const r = typeof o.round === "number" && o.round > 0 ? o.round : o.step || 0.01;
  const decimals = Math.min(10, Math.max(0, Math.ceil(-Math.log10(r) - 1e-9)));
  return Number((Math.round(v / r) * r).toFixed(decimals));
}

/** Parse a typed number; simple arithmetic (+ - * / parentheses) is allowed. */
export function evalNumber(text) {
  const s = String(text).trim();
  if (!s) return null;
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s)) return Number(s);
  const tokens = s.match(/\d+\.?\d*(?:e[-+]?\d+)?|\.\d+|[-+*/()]/gi);
  if (!tokens || tokens.join("") !== s.replace(/\s+/g, "")) return null;
  let i = 0;
  const expr = () => {
    let v = term();
    while (tokens[i] === "+" || tokens[i] === "-") v = tokens[i++] === "+" ? v + term() : v - term();
    return v;
  };
  const term = () => {
    let v = factor();
    while (tokens[i] === "*" || tokens[i] === "/") v = tokens[i++] === "*" ? v * factor() : v / factor();
    return v;
  };
  const factor = () => {
    const t = tokens[i++];
    if (t === "-") return -factor();
    if (t === "+") return factor();
    if (t === "(") {
      const v = expr();
      i++;
      return v;
    }
    return Number(t);
  };
  try {
    const v = expr();
    return i === tokens.length && Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

export { MODE_ALWAYS, touch, removeNode };
