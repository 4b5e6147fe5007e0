// Link shapes, as ComfyUI's "Link render mode" setting names them (LiteGraph's constants):
// spline (2, a curve), linear (1, short stubs out of the sockets and a straight line between)
// and straight (0, right angles). Drawing and hit testing share the same path.

export const LINK_STRAIGHT = 0;
export const LINK_LINEAR = 1;
export const LINK_SPLINE = 2;
const STUB = 15;

/** The path of a link as points (a spline is sampled), from output (x1, y1) to input (x2, y2). */
export function linkPoints(x1, y1, x2, y2, mode = LINK_SPLINE) {
  if (mode === LINK_LINEAR) return [[x1, y1], [x1 + STUB, y1], [x2 - STUB, y2], [x2, y2]];
  if (mode === LINK_STRAIGHT) {
    if (x2 - x1 >= 2 * STUB) {
      const mx = Math.round((x1 + x2) / 2);
      return [[x1, y1], [mx, y1], [mx, y2], [x2, y2]];
    }
    const my = (y1 + y2) / 2;
    return [[x1, y1], [x1 + STUB, y1], [x1 + STUB, my], [x2 - STUB, my], [x2 - STUB, y2], [x2, y2]];
  }
  const dx = Math.max(40, Math.abs(x2 - x1) * 0.5);
  const pts = [];
  for (let i = 0; i <= 24; i++) {
    const s = i / 24, u = 1 - s;
    pts.push([
      u * u * u * x1 + 3 * u * u * s * (x1 + dx) + 3 * u * s * s * (x2 - dx) + s * s * s * x2,
      u * u * u * y1 + 3 * u * u * s * y1 + 3 * u * s * s * y2 + s * s * s * y2,
    ]);
  }
  return pts;
}

/** Add a link's path to the current path of `ctx`. */
export function traceLink(ctx, x1, y1, x2, y2, mode = LINK_SPLINE) {
  ctx.moveTo(x1, y1);
  if (mode === LINK_LINEAR || mode === LINK_STRAIGHT) {
    const pts = linkPoints(x1, y1, x2, y2, mode);
    for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
    return;
  }
  const dx = Math.max(40, Math.abs(x2 - x1) * 0.5);
  ctx.bezierCurveTo(x1 + dx, y1, x2 - dx, y2, x2, y2);
}

/** The point of a link's path nearest to (px, py) when it is within `tol`, else null. */
export function nearestOnLink(x1, y1, x2, y2, mode, px, py, tol) {
  const pts = linkPoints(x1, y1, x2, y2, mode);
  let best = null, bestD = tol;
  for (let i = 1; i < pts.length; i++) {
    const [ax, ay] = pts[i - 1], [bx, by] = pts[i];
    const vx = bx - ax, vy = by - ay;
    const len2 = vx * vx + vy * vy;
    const t = len2 ? Math.max(0, Math.min(1, ((px - ax) * vx + (py - ay) * vy) / len2)) : 0;
    const qx = ax + t * vx, qy = ay + t * vy;
    const d = Math.hypot(px - qx, py - qy);
    if (d <= bestD) {
      bestD = d;
      best = [qx, qy];
    }
  }
  return best;
}
