// ComfyUI's MatchType sockets on the canvas. The inputs of a node that share a template (a type
// variable: a switch's two inputs, say) take the type their links carry: each accepts what the
// template allows narrowed by what the template's other inputs carry, and the outputs of that
// template carry what all of them carry (the allowed types while nothing is linked). So a
// switch fed an INT shows INT sockets in INT's colour, its other input refuses a STRING (the
// type check every link passes, state.js connect) and a link from its output that no longer
// fits is dropped, as ComfyUI's frontend does. The server binds templates the same way
// (engine/node_types.py), so what the canvas lets through validates there. The types are kept
// in the document's sockets, as ComfyUI keeps them in its workflow files.

import { effectiveOutputType, getNode, linkInto, linksFrom, touch, typesCompatible } from "./state.js";

/** The types both `a` and `b` allow ("*" allows all), in `a`'s order; null when none. */
export function commonType(a, b) {
  if (!a || a === "*") return b || "*";
  if (!b || b === "*") return a;
  const other = new Set(String(b).split(",").map((t) => t.trim()));
  const both = String(a).split(",").map((t) => t.trim()).filter((t) => other.has(t));
  return both.length ? both.join(",") : null;
}

/** Type every templated node, upstream ones first (a switch fed by a switch carries what that
 * one was given). `prune` drops links the narrowed outputs no longer fit (an edit, not a load). */
export function typeTemplates(graph, defOf, prune) {
  let changed = false;
  for (const node of upstreamFirst(graph, defOf)) if (typeNode(graph, node, defOf(node), prune)) changed = true;
  if (changed) retypeReroutes(graph);
  return changed;
}

/** One node's templated sockets typed from its links; whether anything changed. */
export function typeNode(graph, node, def, prune) {
  if (!def) return false;
  const groups = templateGroups(graph, node, def);
  let changed = false;
  for (const members of groups.values()) {
    for (const m of members) {
      let t = m.allowed;
      for (const o of members) if (o !== m && o.carried) t = commonType(t, o.carried) || t;
      if (node.inputs[m.slot].type !== t) {
        node.inputs[m.slot].type = t;
        changed = true;
      }
    }
  }
  def.outputs.forEach((out, slot) => {
    if (!out.template || !node.outputs[slot]) return;
    let t = out.type;
    for (const m of groups.get(out.template) || []) if (m.carried) t = commonType(t, m.carried) || t;
    if (retypeOutput(graph, node, slot, t, prune)) changed = true;
  });
  return changed;
}

/** The node's templated inputs, by template: slot, allowed types, the type its link carries. */
function templateGroups(graph, node, def) {
  const groups = new Map();
  const specs = new Map(def.inputs.map((s) => [s.name, s]));
  node.inputs.forEach((inp, slot) => {
    const spec = specs.get(inp.name);
    const template = spec && !spec.widget && !spec.dynamic && spec.opts && spec.opts.template;
    if (!template) return;
    const l = linkInto(graph, node.id, slot);
    const origin = l && getNode(graph, l.origin_id);
    const carried = origin ? effectiveOutputType(graph, origin, l.origin_slot) : null;
    const id = template.template_id;
    if (!groups.has(id)) groups.set(id, []);
    groups.get(id).push({ slot, allowed: spec.type, carried: carried && carried !== "*" ? carried : null });
  });
  return groups;
}

/** Set an output's type; its links carry it, and (when pruning) those it no longer fits go. */
function retypeOutput(graph, node, slot, type, prune) {
  const out = node.outputs[slot];
  if (out.type === type) return false;
  out.type = type;
  for (const l of linksFrom(graph, node.id, slot)) {
    const target = getNode(graph, l.target_id);
    const inp = target && target.inputs[l.target_slot];
    if (prune && inp && target.type !== "Reroute" && !typesCompatible(type, inp.type)) {
      graph.links = graph.links.filter((k) => k !== l);
      touch(graph);
    } else if (type !== "*") l.type = type;
  }
  return true;
}

/** Reroutes show the type of what feeds them (a templated output may have changed it). */
function retypeReroutes(graph) {
  for (const node of graph.nodes) {
    if (node.type !== "Reroute" || !node.outputs[0]) continue;
    const t = effectiveOutputType(graph, node, 0);
    node.outputs[0].type = t;
    if (t !== "*") for (const l of linksFrom(graph, node.id, 0)) l.type = t;
  }
}

/** The templated nodes, each after the templated nodes that feed it (through reroutes); an
 * explicit walk, since a chain of switches may be long. */
function upstreamFirst(graph, defOf) {
  const templated = (n) => {
    const d = !n.missing && defOf(n);
    return !!(d && d.templated);
  };
  const order = [];
  const state = new Map(); // node id -> 1 entered, 2 placed
  for (const start of graph.nodes) {
    if (state.has(start.id) || !templated(start)) continue;
    const stack = [start];
    while (stack.length) {
      const node = stack[stack.length - 1];
      const s = state.get(node.id);
      if (s === undefined) {
        state.set(node.id, 1);
        for (const up of templatedSources(graph, node, templated)) if (!state.has(up.id)) stack.push(up);
        continue;
      }
      stack.pop();
      if (s === 1) {
        state.set(node.id, 2);
        order.push(node);
      }
    }
  }
  return order;
}

function templatedSources(graph, node, templated) {
  const found = [];
  for (let slot = 0; slot < node.inputs.length; slot++) {
    let l = linkInto(graph, node.id, slot);
    let origin = l && getNode(graph, l.origin_id);
    for (let hops = 0; origin && origin.type === "Reroute" && hops < 64; hops++) {
      l = linkInto(graph, origin.id, 0);
      origin = l && getNode(graph, l.origin_id);
    }
    if (origin && templated(origin)) found.push(origin);
  }
  return found;
}
