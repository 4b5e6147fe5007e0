// Hit testing in world coordinates, on the same layouts the renderer draws: which node part
// (socket, title, collapse box, resize grip, widget, body), group or link is under a point.

import { getNode } from "./state.js";
import { TITLE_H, inputPos, outputPos } from "./layout.js";
import { nearestOnLink } from "./links.js";

const SOCKET_R = 11;

/** Nodes topmost first (selected nodes are drawn last, so they are hit first); not `skip`. */
function orderedNodes(app, skip = null) {
  const sel = app.selection;
  const nodes = app.graph.nodes;
  const out = [];
  for (let i = nodes.length - 1; i >= 0; i--) if (sel.has(nodes[i].id) && nodes[i].id !== skip) out.push(nodes[i]);
  for (let i = nodes.length - 1; i >= 0; i--) if (!sel.has(nodes[i].id) && nodes[i].id !== skip) out.push(nodes[i]);
  return out;
}

/** {node, part, slot?, widget?, lx?} or {group, part} or null; `skip` is a node id to see through. */
export function hitTest(app, wx, wy, skip = null) {
  const r = app.renderer;
  const tol = SOCKET_R / Math.max(0.5, r.ds.scale);
  for (const node of orderedNodes(app, skip)) {
    // quick reject on the last frame's geometry (generous margin), then the exact layout
    const cached = r.layouts.get(node.id);
    if (cached && (wx < node.pos[0] - 80 || wx > node.pos[0] + cached.w + 80 || wy < node.pos[1] - 80 || wy > node.pos[1] + cached.h + 300)) continue;
    // always a fresh layout: the last frame's may predate an edit not yet drawn
    const h = hitNode(node, r.layout(node), wx, wy, tol);
    if (h) return h;
  }
  const groups = app.graph.groups;
  for (let i = groups.length - 1; i >= 0; i--) {
    const g = groups[i];
    const [x, y, w, h] = g.bounding;
    if (wx >= x + w - 16 && wx <= x + w + 2 && wy >= y + h - 16 && wy <= y + h + 2) return { group: g, part: "group-resize" };
    if (wx >= x && wx <= x + w && wy >= y && wy <= y + 36) return { group: g, part: "group-title" };
  }
  return null;
}

/** The socket of `kind` ("input" or "output") right under a point on any node but `skip`,
 * even one another node covers: {node, part, slot} or null (where a dragged link lands). */
export function socketAt(app, wx, wy, kind, skip = null) {
  const r = app.renderer;
  const tol = SOCKET_R / Math.max(0.5, r.ds.scale);
  for (const node of orderedNodes(app, skip)) {
    const slots = kind === "input" ? node.inputs : node.outputs;
    if (!slots.length) continue;
    const lay = r.layout(node);
    if (lay.collapsed) continue;
    for (let i = 0; i < slots.length; i++) {
      const [sx, sy] = kind === "input" ? inputPos(node, i, lay) : outputPos(node, i, lay);
      if (Math.abs(wx - sx) < tol && Math.abs(wy - sy) < Math.max(tol * 0.9, 10)) return { node, part: kind, slot: i };
    }
  }
  return null;
}

function hitNode(node, lay, wx, wy, tol) {
  const top = lay.reroute ? node.pos[1] : node.pos[1] - TITLE_H;
  const bottom = lay.collapsed ? node.pos[1] : node.pos[1] + lay.h;
  if (wx < node.pos[0] - tol || wx > node.pos[0] + lay.w + tol || wy < top - 4 || wy > bottom + 4) return null;
  // sockets
  for (let i = 0; i < node.inputs.length; i++) {
    const [sx, sy] = inputPos(node, i, lay);
    if (Math.abs(wx - sx) < tol && Math.abs(wy - sy) < Math.max(tol * 0.9, 10)) return { node, part: "input", slot: i };
  }
  for (let i = 0; i < node.outputs.length; i++) {
    const [sx, sy] = outputPos(node, i, lay);
    if (Math.abs(wx - sx) < tol && Math.abs(wy - sy) < Math.max(tol * 0.9, 10)) return { node, part: "output", slot: i };
  }
  if (wx < node.pos[0] || wx > node.pos[0] + lay.w || wy < top || wy > bottom) return null;
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

/** The link under a point, with the nearest point of its curve: {link, point} or null. */
export function linkAt(app, wx, wy) {
  const graph = app.graph;
  const r = app.renderer;
  const tol = 8 / r.ds.scale;
  for (const link of graph.links) {
    const o = getNode(graph, link.origin_id), t = getNode(graph, link.target_id);
    if (!o || !t) continue;
    const [x1, y1] = outputPos(o, link.origin_slot, r.layout(o));
    const [x2, y2] = inputPos(t, link.target_slot, r.layout(t));
    const point = nearestOnLink(x1, y1, x2, y2, r.linkMode, wx, wy, tol); // the shape drawn (links.js)
    if (point) return { link, point };
  }
  return null;
}
