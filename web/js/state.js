// The graph document: a plain, serialisable object (window.weft.state) plus helpers that
// read and edit it. Links are the single source of truth for connections; an index keyed by
// target/origin socket is rebuilt lazily after each change.

import { markTypedCombo } from "./custom_combo.js";

export const FORMAT = "weft-workflow";
export const FORMAT_VERSION = 1;

export const MODE_ALWAYS = 0;
export const MODE_MUTED = 2; // "never": skipped together with what depends on it
export const MODE_BYPASS = 4; // passes its inputs through to matching outputs

const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);

// Nodes that only live in the editor: never sent to the server.
export const VIRTUAL_TYPES = new Set(["Reroute", "Note", "MarkdownNote", "PrimitiveNode"]);

export function newWorkflowId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
    const r = (Math.random() * 16) | 0;
    return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
  });
}

export function emptyGraph() {
  return {
    id: newWorkflowId(),
    format: FORMAT,
    version: FORMAT_VERSION,
    last_node_id: 0,
    last_link_id: 0,
    nodes: [],
    links: [],
    groups: [],
    extra: { ds: { scale: 1, offset: [0, 0] } },
  };
}

// ---- node definitions (from /object_info) ---------------------------------------------

/** ComfyUI's name for a socket typed by a template (v3 `io.MatchType`): typed by the template's
 * allowed types, narrowed to what its node's other links carry (match_type.js). */
const MATCH_TYPE = "COMFY_MATCHTYPE_V3";
/** ComfyUI's v3 dynamic inputs (dynamic.js): a socket that grows copies of itself as they are
 * linked, and a combo whose chosen option brings inputs of its own. */
const AUTOGROW = "COMFY_AUTOGROW_V3";
const DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3";
/** A socket that, once linked, brings inputs of its own (ComfyUI's `_io.DynamicSlot`). */
const DYNAMIC_SLOT = "COMFY_DYNAMICSLOT_V3";

/** Normalise one /object_info entry into the shape the editor uses. */
export function normalizeDef(name, info) {
  const inputs = [];
  const order = info.input_order || {};
  for (const kind of ["required", "optional"]) {
    const group = (info.input && info.input[kind]) || {};
    const names = order[kind] || Object.keys(group);
    for (const inputName of names) {
      const spec = group[inputName];
      if (!spec) continue;
      inputs.push(normalizeInput(inputName, spec, kind));
    }
  }
  const outTypes = info.output || [];
  const allowed = {};
  for (const input of inputs) {
    const socket = input.dynamic === "autogrow" ? input.inner : input; // an Autogrow's copies may be MatchTypes
    if (socket && !socket.dynamic && socket.opts.template) allowed[socket.opts.template.template_id] = socket.type;
  }
  const templates = info.output_matchtypes || [];
  const outputs = outTypes.map((t, i) => ({
    name: (info.output_name && info.output_name[i]) || (Array.isArray(t) ? "COMBO" : String(t)),
    type: Array.isArray(t) ? "COMBO" : t === MATCH_TYPE ? allowed[templates[i]] || "*" : String(t),
    is_list: !!(info.output_is_list && info.output_is_list[i]),
    ...(t === MATCH_TYPE && templates[i] ? { template: templates[i] } : {}),
  }));
  const typed = markTypedCombo(name, inputs); // ComfyUI's Custom Combo (custom_combo.js)
  const dynamic = inputs.some((i) => i.dynamic);
  return {
    name,
    // per-node inputs (dynamic.js) and socket types that follow links (match_type.js)
    dynamic,
    typed,
    templated: outputs.some((o) => o.template) || JSON.stringify(info.input || {}).includes(MATCH_TYPE),
    display_name: info.display_name || name,
    category: info.category || "",
    description: info.description || "",
    output_node: !!info.output_node,
    python_module: info.python_module || "",
    pack: info.pack && typeof info.pack === "object" ? info.pack : null,
    inputs,
    outputs,
  };
}

/** One /object_info input declaration ([type, options]) in the shape the editor uses. */
export function normalizeInput(name, spec, kind) {
  let [type, opts] = Array.isArray(spec) ? spec : [spec, {}];
  opts = opts || {};
  let choices = null;
  if (type === DYNAMIC_COMBO || type === AUTOGROW || type === DYNAMIC_SLOT) return dynamicInput(name, type, opts, kind);
  if (Array.isArray(type)) {
    choices = type;
    type = "COMBO";
  } else if (type === "COMBO") {
    choices = opts.options || opts.choices || [];
  }
  const matched = type === MATCH_TYPE; // a socket whatever its allowed types
  if (matched) type = (opts.template && opts.template.allowed_types) || "*";
  type = String(type);
  const widget = WIDGET_TYPES.has(type) && !opts.forceInput && !matched;
  return { name, type, kind, opts, choices, widget, optional: kind === "optional" };
}

/** A DynamicCombo is a combo of its option keys (the options kept for dynamic.js); an Autogrow
 * stands for its copies, typed as its template input (what search filters and cards show); a
 * DynamicSlot is an optional socket of its `slotType` (any type for a MatchType's, as the
 * server types it), its inputs kept. */
function dynamicInput(name, type, opts, kind) {
  const optional = kind === "optional";
  if (type === DYNAMIC_SLOT) {
    const { inputs = {}, slotType, ...rest } = opts;
    const slot = !slotType || slotType === MATCH_TYPE ? "*" : String(slotType);
    return { name, type: slot, kind: "optional", opts: rest, choices: null, widget: false, optional: true, dynamic: "slot", brings: inputs };
  }
  if (type === DYNAMIC_COMBO) {
    const { options = [], ...rest } = opts;
    const keyed = options.filter((o) => o && typeof o === "object");
    return { name, type: "COMBO", kind, opts: rest, choices: keyed.map((o) => o.key), widget: true, optional, dynamic: "combo", options: keyed };
  }
  const template = opts.template || {};
  const groups = template.input || {};
  const entry = Object.entries(groups.required || groups.optional || {})[0];
  const inner = entry ? normalizeInput(entry[0], entry[1], "optional") : null;
  return { name, type: inner ? inner.type : "*", kind, opts, choices: null, widget: false, optional, dynamic: "autogrow", template, inner };
}

export function defaultWidgetValue(input) {
  const o = input.opts || {};
  switch (input.type) {
    case "INT": {
      let v = Number.isFinite(o.default) ? o.default : 0;
      if (Number.isFinite(o.min) && v < o.min) v = o.min;
      return v;
    }
    case "FLOAT": {
      let v = Number.isFinite(o.default) ? o.default : 0;
      if (Number.isFinite(o.min) && v < o.min) v = o.min;
      return v;
    }
    case "BOOLEAN":
      return o.default === undefined ? false : !!o.default;
    case "COMBO":
      return o.default !== undefined && o.default !== null ? o.default : (input.choices || [])[0] ?? "";
    default:
      return o.default === undefined ? "" : String(o.default);
  }
}

export function hasControlAfterGenerate(input) {
  if (input.type !== "INT") return false;
  const o = input.opts || {};
  if (o.control_after_generate !== undefined) return !!o.control_after_generate;
  return input.name === "seed" || input.name === "noise_seed";
}

// ---- type rules -----------------------------------------------------------------------

export function typesCompatible(produced, accepted) {
  if (!produced || !accepted) return false;
  if (produced === accepted || produced === "*" || accepted === "*") return true;
  const a = String(produced).split(",").map((s) => s.trim());
  const b = new Set(String(accepted).split(",").map((s) => s.trim()));
  return a.some((t) => b.has(t));
}

// ---- graph access ---------------------------------------------------------------------

const indexes = new WeakMap();

/** Mark the graph changed so indexes rebuild. */
export function touch(graph) {
  indexes.delete(graph);
}

function index(graph) {
  let idx = indexes.get(graph);
  if (idx) return idx;
  const nodes = new Map();
  for (const n of graph.nodes) nodes.set(n.id, n);
  const byTarget = new Map();
  const byOrigin = new Map();
  for (const l of graph.links) {
    byTarget.set(`${l.target_id}:${l.target_slot}`, l);
    const key = `${l.origin_id}:${l.origin_slot}`;
    if (!byOrigin.has(key)) byOrigin.set(key, []);
    byOrigin.get(key).push(l);
  }
  idx = { nodes, byTarget, byOrigin };
  indexes.set(graph, idx);
  return idx;
}

export const getNode = (graph, id) => index(graph).nodes.get(id);
export const linkInto = (graph, nodeId, slot) => index(graph).byTarget.get(`${nodeId}:${slot}`) || null;
export const linksFrom = (graph, nodeId, slot) => index(graph).byOrigin.get(`${nodeId}:${slot}`) || [];

// ---- editing primitives (callers wrap them in history commands) ----------------------

export function createNode(graph, def, pos, defs) {
  const node = {
    id: ++graph.last_node_id,
    type: def.name,
    pos: [Math.round(pos[0]), Math.round(pos[1])],
    size: [0, 0],
    mode: MODE_ALWAYS,
    inputs: [],
    outputs: def.outputs.map((o) => ({ name: o.name, type: o.type })),
    widgets_values: {},
    properties: {},
  };
  if (def.pack && def.pack.name) {
    // provenance, in the field names ComfyUI's frontend writes (docs/plugins.md)
    node.properties.cnr_id = def.pack.name;
    if (def.pack.version) node.properties.ver = def.pack.version;
  }
  for (const input of def.inputs) {
    if (input.widget) {
      node.widgets_values[input.name] = defaultWidgetValue(input);
      if (hasControlAfterGenerate(input)) {
        node.properties.control = node.properties.control || {};
        node.properties.control[input.name] = "randomize";
      }
    } else if (!input.dynamic) {
      node.inputs.push({ name: input.name, type: input.type });
    } // an Autogrow's copies come with the node's first settling (dynamic.js)
  }
  if (def.name === "Reroute") {
    node.inputs = [{ name: "", type: "*" }];
    node.outputs = [{ name: "", type: "*" }];
  }
  node.size = defaultSize(node, def);
  graph.nodes.push(node);
  touch(graph);
  return node;
}

export function defaultSize(node, def) {
  if (node.type === "Reroute") return [75, 26];
  let longest = (def ? def.display_name : node.type).length * 8 + 60;
  for (const s of node.inputs) longest = Math.max(longest, (s.name.length + 4) * 7 + 80);
  for (const s of node.outputs) longest = Math.max(longest, (s.name.length + 4) * 7 + 80);
  if (def) {
    for (const i of def.inputs) if (i.widget) longest = Math.max(longest, i.name.length * 7 + 130);
    if (def.inputs.some((i) => i.widget && hasControlAfterGenerate(i))) longest = Math.max(longest, 270);
  }
  return [Math.min(Math.max(longest, 200), 400), 0];
}

export function removeNode(graph, id) {
  graph.links = graph.links.filter((l) => l.origin_id !== id && l.target_id !== id);
  graph.nodes = graph.nodes.filter((n) => n.id !== id);
  touch(graph);
}

export function removeLink(graph, linkId) {
  graph.links = graph.links.filter((l) => l.id !== linkId);
  touch(graph);
}

/** Connect origin output to target input; replaces whatever fed that input. */
export function connect(graph, originId, originSlot, targetId, targetSlot) {
  const origin = getNode(graph, originId);
  const target = getNode(graph, targetId);
  if (!origin || !target || originId === targetId) return null;
  const out = origin.outputs[originSlot];
  const inp = target.inputs[targetSlot];
  if (!out || !inp) return null;
  const outType = effectiveOutputType(graph, origin, originSlot);
  if (!typesCompatible(outType, inp.type)) return null;
  if (createsCycle(graph, originId, targetId)) return null;
  const old = linkInto(graph, targetId, targetSlot);
  if (old) graph.links = graph.links.filter((l) => l !== old);
  const link = {
    id: ++graph.last_link_id,
    origin_id: originId,
    origin_slot: originSlot,
    target_id: targetId,
    target_slot: targetSlot,
    type: outType === "*" ? inp.type : outType,
  };
  graph.links.push(link);
  touch(graph);
  if (target.type === "Reroute") propagateRerouteType(graph, target);
  return link;
}

/** Whether a link origin -> target would close a loop (the target feeds the origin). */
export function createsCycle(graph, originId, targetId) {
  // a link origin -> target makes a cycle if origin is reachable downstream from target
  const seen = new Set();
  const stack = [targetId];
  while (stack.length) {
    const id = stack.pop();
    if (id === originId) return true;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const l of graph.links) if (l.origin_id === id) stack.push(l.target_id);
  }
  return false;
}

/** Type an output really produces: a reroute takes the type of what feeds it. */
export function effectiveOutputType(graph, node, slot, depth = 0) {
  if (node.type === "Reroute" && depth < 64) {
    const l = linkInto(graph, node.id, 0);
    if (l) {
      const src = getNode(graph, l.origin_id);
      if (src) return effectiveOutputType(graph, src, l.origin_slot, depth + 1);
    }
    return "*";
  }
  return node.outputs[slot] ? node.outputs[slot].type : "*";
}

function propagateRerouteType(graph, reroute) {
  const t = effectiveOutputType(graph, reroute, 0);
  reroute.outputs[0].type = t === "*" ? "*" : t;
  for (const l of linksFrom(graph, reroute.id, 0)) {
    l.type = t;
    const next = getNode(graph, l.target_id);
    if (next && next.type === "Reroute") propagateRerouteType(graph, next);
  }
}

/** Turn a widget into an input socket (so a link can drive it). */
export function convertWidgetToInput(graph, node, def, name) {
  if (node.inputs.some((i) => i.widget === name)) return false;
  const spec = def && def.inputs.find((i) => i.name === name);
  if (!spec) return false;
  node.inputs.push({ name, type: spec.type, widget: name, ...(spec.label ? { label: spec.label } : {}) });
  touch(graph);
  return true;
}

/** Turn an input socket created from a widget back into a widget. */
export function convertInputToWidget(graph, node, name) {
  const slot = node.inputs.findIndex((i) => i.widget === name);
  if (slot < 0) return false;
  removeInputSlot(graph, node, slot);
  return true;
}

function removeInputSlot(graph, node, slot) {
  graph.links = graph.links.filter((l) => !(l.target_id === node.id && l.target_slot === slot));
  for (const l of graph.links) if (l.target_id === node.id && l.target_slot > slot) l.target_slot -= 1;
  node.inputs.splice(slot, 1);
  touch(graph);
}

export function isWidgetConverted(node, name) {
  return node.inputs.some((i) => i.widget === name);
}

/** The world box [x0, y0, x1, y1] around the nodes and groups; `boxOf(node)` gives a node's
 * box as drawn (layout.js nodeBox), else its stored size is used (0 high for a new node). */
export function graphBounds(graph, boxOf = null) {
  if (!graph.nodes.length) return [0, 0, 0, 0];
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const n of graph.nodes) {
    const [bx0, by0, bx1, by1] = boxOf ? boxOf(n) : [n.pos[0], n.pos[1] - 26, n.pos[0] + n.size[0], n.pos[1] + n.size[1]];
    x0 = Math.min(x0, bx0);
    y0 = Math.min(y0, by0);
    x1 = Math.max(x1, bx1);
    y1 = Math.max(y1, by1);
  }
  for (const g of graph.groups) {
    const [x, y, w, h] = g.bounding;
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x + w);
    y1 = Math.max(y1, y + h);
  }
  return [x0, y0, x1, y1];
}

/** A deep copy that shares nothing with the live graph. */
export const clone = (v) => JSON.parse(JSON.stringify(v));
