// The minimap's picture of the graph (its background, groups and nodes), kept and painted
// again only when a node or group moves, is resized or laid out again, comes or goes, or the
// map's scale or offset changes. While the view pans inside the graph only the view rectangle
// moves, and painting every node's rectangle each frame was most of the minimap's cost; while
// the map itself moves (a view wider than the graph) it is painted directly, as before.

import { TITLE_H } from "./layout.js";

export class MinimapPicture {
  constructor() {
    this.canvas = null;
    this.seen = null; // what the picture shows: {W, H, s, ox, oy, nodes, xs, ys, lays, groups, boxes}
    this.last = null; // the map's size, scale and offset in the last frame
  }

  /** Draw the picture of `graph` at scale `s`, offset (ox, oy) onto ctx (W x H, device px). */
  draw(ctx, graph, layouts, W, H, s, ox, oy) {
    if (!W || !H) return; // not laid out yet: nothing to show, and an empty canvas cannot be drawn
    const last = this.last;
    // while the map itself moves (a zoomed-out view wider than the graph), paint directly
    const steady = last && last.W === W && last.H === H && last.s === s && last.ox === ox && last.oy === oy;
    if (!steady) this.last = { W, H, s, ox, oy };
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, W, H); // a translucent fill alone would keep ghosts of earlier frames
    if (!steady) {
      this.seen = null;
      paintGraph(ctx, graph, layouts, W, H, s, ox, oy);
      return;
    }
    if (!this.shows(graph, layouts, W, H, s, ox, oy)) this.paint(graph, layouts, W, H, s, ox, oy);
    ctx.drawImage(this.canvas, 0, 0);
  }

  shows(graph, layouts, W, H, s, ox, oy) {
    const k = this.seen;
    if (!k || k.W !== W || k.H !== H || k.s !== s || k.ox !== ox || k.oy !== oy) return false;
    const nodes = graph.nodes, groups = graph.groups;
    if (k.nodes.length !== nodes.length || k.groups.length !== groups.length) return false;
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i];
      if (k.nodes[i] !== n || k.xs[i] !== n.pos[0] || k.ys[i] !== n.pos[1] || k.lays[i] !== layouts.get(n.id)) return false;
    }
    for (let i = 0; i < groups.length; i++) {
      const b = groups[i].bounding;
      if (k.groups[i] !== groups[i] || k.boxes[i * 4] !== b[0] || k.boxes[i * 4 + 1] !== b[1] || k.boxes[i * 4 + 2] !== b[2] || k.boxes[i * 4 + 3] !== b[3]) return false;
    }
    return true;
  }

  paint(graph, layouts, W, H, s, ox, oy) {
    if (!this.canvas || this.canvas.width !== W || this.canvas.height !== H) this.canvas = new OffscreenCanvas(W, H);
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, W, H);
    paintGraph(ctx, graph, layouts, W, H, s, ox, oy);
    this.seen = {
      W, H, s, ox, oy,
      nodes: [...graph.nodes],
      xs: graph.nodes.map((n) => n.pos[0]),
      ys: graph.nodes.map((n) => n.pos[1]),
      lays: graph.nodes.map((n) => layouts.get(n.id)),
      groups: [...graph.groups],
      boxes: graph.groups.flatMap((g) => g.bounding.slice(0, 4)),
    };
  }
}

/** The map's background, groups and nodes, on a cleared ctx. */
function paintGraph(ctx, graph, layouts, W, H, s, ox, oy) {
  ctx.fillStyle = "rgba(20,21,24,0.92)";
  ctx.fillRect(0, 0, W, H);
  for (const g of graph.groups) {
    ctx.fillStyle = "rgba(63,120,158,0.35)";
    ctx.fillRect(g.bounding[0] * s + ox, g.bounding[1] * s + oy, g.bounding[2] * s, g.bounding[3] * s);
  }
  ctx.fillStyle = "#6d727c";
  for (const n of graph.nodes) {
    const lay = layouts.get(n.id);
    const h = (lay ? lay.h : n.size[1]) + TITLE_H;
    ctx.fillRect(n.pos[0] * s + ox, (n.pos[1] - TITLE_H) * s + oy, Math.max(1, (lay ? lay.w : n.size[0]) * s), Math.max(1, h * s));
  }
}
