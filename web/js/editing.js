// Edits the menus, the keyboard and the pointer share: add, delete, copy and paste,
// duplicate, bypass and mute, groups, reroutes, and moving the view to what matters.
// Each edit is one undoable command (app.cmd).

import { TITLE_H, nodeBox } from "./layout.js";
import { MODE_ALWAYS, clone, connect, createNode, getNode, graphBounds, removeNode, touch } from "./state.js";
import { VIRTUAL_DEFS } from "./defaults.js";
import { settleNew } from "./dynamic.js";
import { fitWidth } from "./node_size.js";

const CLIPBOARD_KEY = "weft.clipboard";

export class Editing {
  constructor(app) {
    this.app = app;
    this.clipboard = null;
  }

  get graph() {
    return this.app.graph;
  }

  addNodeRaw(def, pos) {
    const node = createNode(this.graph, def, pos, this.app.defs);
    settleNew(this.graph, node, this.app.defs); // an Autogrow's first copies, an option's inputs
    if (def.name === "Note") node.size = [260, 0];
    else if (def.name === "MarkdownNote") node.size = [400, 240];
    else this.fitWidth(node);
    this.app.nodeCreated(node);
    return node;
  }

  /** Widen a node to show its title, sockets, widget labels and values uncut (node_size.js). */
  fitWidth(node) {
    const r = this.app.renderer;
    const def = this.app.defFor(node);
    if (!r || !def || node.type === "Reroute") return;
    node.size[0] = fitWidth(r.ctx, node, def, r.layout(node), node.size[0]);
  }

  addNode(type, pos) {
    const app = this.app;
    const def = app.defs[type] || VIRTUAL_DEFS[type];
    if (!def) throw new Error(`unknown node type ${type}`);
    const node = app.cmd(`Add ${def.display_name}`, () => this.addNodeRaw(def, pos));
    app.setSelection([node.id]);
    return node;
  }

  openSearch(clientX, clientY, worldPos) {
    const search = this.app.search;
    search.onCancel = null;
    search.open(clientX, clientY, {
      onPick: (def) => this.addNode(def.name, worldPos),
    });
  }

  deleteSelection() {
    const app = this.app;
    const g = app.selectedGroup;
    if (!app.selection.size && !g) return;
    app.cmd("Delete", () => {
      for (const id of app.selection) removeNode(this.graph, id);
      if (g && !app.selection.size) this.graph.groups.splice(this.graph.groups.indexOf(g), 1);
    });
    app.selection = new Set();
    app.selectedGroup = null;
    app.renderer.requestRender();
  }

  toggleMode(mode) {
    const nodes = [...this.app.selection].map((id) => getNode(this.graph, id)).filter(Boolean);
    if (!nodes.length) return;
    const allSet = nodes.every((n) => n.mode === mode);
    this.app.cmd(mode === 4 ? "Bypass" : "Mute", () => {
      for (const n of nodes) n.mode = allSet ? MODE_ALWAYS : mode;
    });
  }

  copy() {
    const ids = new Set(this.app.selection);
    if (!ids.size) return false;
    const nodes = this.graph.nodes.filter((n) => ids.has(n.id)).map(clone);
    const links = this.graph.links.filter((l) => ids.has(l.target_id)).map(clone);
    this.clipboard = { nodes, links };
    try {
      localStorage.setItem(CLIPBOARD_KEY, JSON.stringify(this.clipboard));
    } catch {
      /* clipboard stays in memory */
    }
    return true;
  }

  paste(pos, keepInputs = false) {
    let clip = this.clipboard;
    try {
      clip = JSON.parse(localStorage.getItem(CLIPBOARD_KEY) || "null") || clip;
    } catch {
      /* use memory */
    }
    if (!clip || !clip.nodes.length) return [];
    return this.insertNodes(clip, pos, keepInputs, "Paste");
  }

  /** Add copies of clip's nodes (at pos, or offset from where they were) and their links. */
  insertNodes(clip, pos, keepInputs, label) {
    const created = [];
    const run = () => {
      const graph = this.graph;
      const x0 = Math.min(...clip.nodes.map((n) => n.pos[0]));
      const y0 = Math.min(...clip.nodes.map((n) => n.pos[1]));
      const idMap = new Map();
      for (const src of clip.nodes) {
        const n = clone(src);
        n.id = ++graph.last_node_id;
        n.pos = pos ? [Math.round(pos[0] + n.pos[0] - x0), Math.round(pos[1] + n.pos[1] - y0 + TITLE_H)] : [n.pos[0] + 30, n.pos[1] + 30];
        idMap.set(src.id, n.id);
        graph.nodes.push(n);
        created.push(n.id);
        this.app.nodeCreated(n);
      }
      touch(graph);
      for (const l of clip.links) {
        const target = idMap.get(l.target_id);
        const origin = idMap.has(l.origin_id) ? idMap.get(l.origin_id) : keepInputs && getNode(graph, l.origin_id) ? l.origin_id : null;
        if (target == null || origin == null) continue;
        connect(graph, origin, l.origin_slot, target, l.target_slot);
      }
    };
    if (label) this.app.cmd(label, run);
    else run();
    this.app.setSelection(created);
    return created;
  }

  duplicateSelection(offset, withLabel = true) {
    const ids = new Set(this.app.selection);
    const nodes = this.graph.nodes.filter((n) => ids.has(n.id)).map(clone);
    const links = this.graph.links.filter((l) => ids.has(l.target_id) && ids.has(l.origin_id)).map(clone);
    if (!nodes.length) return [];
    const x0 = Math.min(...nodes.map((n) => n.pos[0]));
    const y0 = Math.min(...nodes.map((n) => n.pos[1]));
    return this.insertNodes({ nodes, links }, [x0 + offset[0], y0 + offset[1] - TITLE_H], false, withLabel ? "Duplicate" : null);
  }

  addGroup(pos, bounding = null) {
    this.app.cmd("Add group", () => {
      this.graph.groups.push({ title: "Group", bounding: bounding || [Math.round(pos[0]), Math.round(pos[1]), 400, 300], color: "#3f789e" });
    });
  }

  groupSelection() {
    const nodes = [...this.app.selection].map((id) => getNode(this.graph, id)).filter(Boolean);
    if (!nodes.length) return;
    this.addGroup(null, this.boundsOf(nodes, 20));
  }

  /** A group's bounding box around nodes, with room for its title. */
  boundsOf(nodes, pad) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of nodes) {
      const lay = this.app.renderer.layout(n);
      x0 = Math.min(x0, n.pos[0]);
      y0 = Math.min(y0, n.pos[1] - TITLE_H);
      x1 = Math.max(x1, n.pos[0] + lay.w);
      y1 = Math.max(y1, n.pos[1] + lay.h);
    }
    return [Math.round(x0 - pad), Math.round(y0 - pad - 36), Math.round(x1 - x0 + 2 * pad), Math.round(y1 - y0 + 2 * pad + 36)];
  }

  fitGroup(g) {
    const [gx, gy, gw, gh] = g.bounding;
    const inside = this.graph.nodes.filter((n) => n.pos[0] < gx + gw && n.pos[0] + n.size[0] > gx && n.pos[1] < gy + gh && n.pos[1] > gy);
    if (inside.length) this.app.cmd("Fit group", () => { g.bounding = this.boundsOf(inside, 20); });
  }

  insertReroute(link, point) {
    this.app.cmd("Add reroute", () => {
      const graph = this.graph;
      const r = createNode(graph, VIRTUAL_DEFS.Reroute, [point[0] - 37, point[1] - 13], this.app.defs);
      const { origin_id, origin_slot, target_id, target_slot } = link;
      connect(graph, origin_id, origin_slot, r.id, 0);
      connect(graph, r.id, 0, target_id, target_slot);
    });
  }

  /** Show every node whole (its height as drawn: widgets, text, images) in the part of the
   * canvas the side panels leave free. */
  fitView() {
    const graph = this.graph;
    if (!graph.nodes.length) return;
    const r = this.app.renderer;
    const [x0, y0, x1, y1] = graphBounds(graph, (n) => nodeBox(n, r.layout(n)));
    const [ax0, ay0, ax1, ay1] = freeArea(r.canvas);
    const pad = 36; // screen pixels around the graph
    const fit = Math.min((ax1 - ax0 - 2 * pad) / Math.max(1, x1 - x0), (ay1 - ay0 - 2 * pad) / Math.max(1, y1 - y0));
    const scale = Math.min(1.5, Math.max(0.08, fit));
    const cx = (ax0 + ax1) / 2, cy = (ay0 + ay1) / 2;
    graph.extra.ds = { scale, offset: [cx / scale - (x0 + x1) / 2, cy / scale - (y0 + y1) / 2] };
    this.app.viewChanged();
  }

  /** Centre the view on a node (and select it). */
  focusNode(id, select = true) {
    const node = getNode(this.graph, id);
    if (!node) return;
    const r = this.app.renderer;
    const ds = this.graph.extra.ds;
    const lay = r.layout(node);
    const [ax0, ay0, ax1, ay1] = freeArea(r.canvas);
    ds.offset = [(ax0 + ax1) / 2 / ds.scale - (node.pos[0] + lay.w / 2), (ay0 + ay1) / 2 / ds.scale - (node.pos[1] + lay.h / 2)];
    if (select) this.app.setSelection([id]);
    this.app.viewChanged();
  }
}

/** The part of the canvas that no side panel (node library, queue, ...) covers, in canvas
 * pixels: [x0, y0, x1, y1]. A side panel is a shown element of the stage as tall as the
 * canvas against its left or right edge. */
export function freeArea(canvas) {
  const rect = canvas.getBoundingClientRect();
  let x0 = 0, x1 = rect.width;
  for (const el of canvas.parentElement.children) {
    if (el === canvas || el.hidden) continue;
    const b = el.getBoundingClientRect();
    if (!b.width || b.width > rect.width / 2 || b.height < rect.height * 0.8) continue;
    if (b.left <= rect.left + 1) x0 = Math.max(x0, b.right - rect.left);
    else if (b.right >= rect.right - 1) x1 = Math.min(x1, b.left - rect.left);
  }
  return x1 - x0 < 200 ? [0, 0, rect.width, rect.height] : [x0, 0, x1, rect.height];
}
