// ComfyUI's v3 dynamic inputs on the canvas. An Autogrow ("values") shows copies of its template
// input, named as ComfyUI names them ("values.value0", "values.value1"..., or from its names
// list): its `min` copies (at least one), and one free copy after the last linked one, up to
// `max`. A DynamicCombo ("mode") is a combo whose chosen option brings inputs of its own,
// flattened by dots ("mode.multiplier"; nested: "mode.sub.count"); a DynamicSlot ("hint") is a
// socket whose inputs ("hint.strength") show while it is linked. So the inputs of such a node
// are its own: nodeDef expands them from its widget values and sockets, and settleGraph brings
// its sockets, values and links in line after every edit (inside the edit's undo step) and every
// load. What is drawn, saved and queued is then what the server expects (v3_dynamic.py).
// ComfyUI's Custom Combo, whose options are typed into widgets of their own, is settled here
// too (custom_combo.js).

import { defaultWidgetValue, getNode, hasControlAfterGenerate, linkInto, linksFrom, normalizeInput, touch } from "./state.js";
import { typeNode, typeTemplates } from "./match_type.js";
import { optionState, settleTypedValues, typedInputs } from "./custom_combo.js";

/** The server's `max` when a prefix template gives none (nodes/plugins/v3_dynamic.py). */
const DEFAULT_MAX = 10;
/** ComfyUI's cap on an Autogrow's names. */
const NAMES_LIMIT = 100;
const NONE = new Set();

// ---- expansion ------------------------------------------------------------------------

/** The flattened inputs of one node, in the order ComfyUI shows them (what an option or a slot
 * brings right after it). `ask` knows the node: `value(name)`, a DynamicCombo's chosen key
 * (undefined: its default); `count(group)`, how many of an Autogrow's copies show;
 * `given(name)`, whether a DynamicSlot is linked (then its inputs show). */
export function expandInputs(def, ask) {
  const inputs = [];
  const groups = [];
  const bring = (path, declared) => {
    for (const kind of ["required", "optional"]) {
      for (const [sub, decl] of Object.entries((declared && declared[kind]) || {})) walk(normalizeInput(sub, decl, kind), `${path}.${sub}`);
    }
  };
  const walk = (spec, path) => {
    if (spec.dynamic === "combo") {
      inputs.push(flat(spec, path));
      const chosen = ask.value(path);
      const key = chosen === undefined ? defaultWidgetValue(spec) : chosen;
      const option = spec.options.find((o) => o.key === key);
      bring(path, option && option.inputs);
    } else if (spec.dynamic === "autogrow") {
      const group = autogrowGroup(spec, path);
      if (!group) return;
      groups.push(group);
      const n = ask.count(group);
      for (let i = 0; i < n; i++) inputs.push(copyOf(group, i));
    } else if (spec.dynamic === "slot") {
      inputs.push(flat(spec, path));
      if (ask.given(path)) bring(path, spec.brings);
    } else if (spec.dynamic === "typed") inputs.push(...typedInputs(spec, ask.value));
    else inputs.push(flat(spec, path));
  };
  for (const spec of def.inputs) walk(spec, spec.name);
  return { inputs, groups };
}

/** An input brought by a dynamic one: its flattened name, labelled by its own. */
function flat(spec, path) {
  return path === spec.name ? spec : { ...spec, name: path, label: spec.name };
}

/** An Autogrow's copies: full names, shown names, min (max is the number of names). */
function autogrowGroup(spec, path) {
  const t = spec.template || {};
  if (!spec.inner) return null;
  let names;
  if (Array.isArray(t.names)) names = t.names.slice(0, NAMES_LIMIT).map(String);
  else {
    const max = Math.min(Number.isFinite(t.max) ? t.max : DEFAULT_MAX, NAMES_LIMIT);
    names = Array.from({ length: Math.max(0, max) }, (_, i) => `${t.prefix ?? ""}${i}`);
  }
  const min = Number.isFinite(t.min) ? Math.max(0, t.min) : 1;
  return { path, short: names, names: names.map((n) => `${path}.${n}`), min, optional: spec.optional, inner: spec.inner };
}

/** Copy i of an Autogrow: a socket, required below `min` (as ComfyUI's frontend marks it). */
function copyOf(group, i) {
  const required = i < group.min && !group.optional;
  return {
    ...group.inner, name: group.names[i], label: group.short[i], widget: false,
    kind: required ? "required" : "optional", optional: !required, group: group.path,
  };
}

/** How many copies the names in `present` make (the last one present counts, gaps too). */
function presentCount(group, present) {
  let n = 0;
  group.names.forEach((name, i) => {
    if (present.has(name)) n = i + 1;
  });
  return n;
}

/** `def` with the inputs `valueOf` (combo keys), `present` (the copies' names) and `given`
 * (the linked slots' names) bring. */
export function expandedDef(def, valueOf, present, given) {
  const { inputs, groups } = expandInputs(def, { value: valueOf, count: (g) => presentCount(g, present), given: (name) => given.has(name) });
  return { ...def, inputs, groups, base: def, _upload: undefined };
}

// ---- the definition one node has --------------------------------------------------------

const kept = new WeakMap(); // node -> {base, def, combos: [[name, value]], names: [input names], slots, keys}

function countKeys(obj) {
  let n = 0;
  for (const key in obj) if (Object.prototype.hasOwnProperty.call(obj, key)) n++;
  return n;
}

/** The definition of a node as it stands: for a dynamic type, the inputs its chosen options
 * and grown copies bring; kept while they stay (the layout cache compares it by identity). */
export function nodeDef(node, defs) {
  const def = defs[node.type];
  if (!def || !def.dynamic) return def || null;
  const k = kept.get(node);
  if (k && k.base === def && holds(k, node)) return k.def;
  const combos = [];
  const values = node.widgets_values;
  const valueOf = (name) => {
    combos.push([name, values[name]]);
    return values[name];
  };
  const present = new Set(node.inputs.map((i) => i.name));
  const out = expandedDef(def, valueOf, present, slotsShown(def, node, present));
  const slots = def.inputs.some((i) => i.dynamic === "slot");
  kept.set(node, { base: def, def: out, combos, names: node.inputs.map((i) => i.name), slots, keys: slots ? countKeys(values) : 0 });
  return out;
}

/** The DynamicSlots whose inputs the node shows (settling keeps them to the linked slots). */
function slotsShown(def, node, present) {
  const shown = new Set();
  if (!def.inputs.some((i) => i.dynamic === "slot")) return shown;
  // a slot's inputs are named "<slot>.<input>": every dotted prefix of a name the node has
  const names = [...present, ...Object.keys(node.widgets_values)];
  for (const name of names) for (let dot = name.indexOf("."); dot > 0; dot = name.indexOf(".", dot + 1)) shown.add(name.slice(0, dot));
  return shown;
}

function holds(k, node) {
  for (const [name, value] of k.combos) if (node.widgets_values[name] !== value) return false;
  if (k.slots && countKeys(node.widgets_values) !== k.keys) return false; // a slot's values came or went
  const inputs = node.inputs;
  if (inputs.length !== k.names.length) return false;
  for (let i = 0; i < inputs.length; i++) if (inputs[i].name !== k.names[i]) return false;
  return true;
}

// ---- settling: sockets, values and links after an edit or a load ---------------------

/** The inputs of the nodes with dynamic inputs that were linked when an edit began, by node. */
export function observeLinks(graph, defs) {
  const seen = new Map();
  for (const l of graph.links) {
    const node = getNode(graph, l.target_id);
    const def = node && defs[node.type];
    const inp = def && def.dynamic && node.inputs[l.target_slot];
    if (!inp) continue;
    if (!seen.has(node.id)) seen.set(node.id, new Set());
    seen.get(node.id).add(inp.name);
  }
  return seen;
}

/** Each Custom Combo's choice and options when an edit began, by node (custom_combo.js). */
export function observeOptions(graph, defs) {
  const seen = new Map();
  for (const node of graph.nodes) {
    const def = defs[node.type];
    if (def && def.typed && !node.missing) seen.set(node.id, optionState(node.widgets_values || {}));
  }
  return seen;
}

/** Bring every node with dynamic inputs or templated sockets in line with its values and links.
 * `before` (observeLinks at the start of an edit) makes it an edit: an Autogrow copy unlinked
 * closes its gap (the later links move up, as in ComfyUI), a node whose inputs changed is
 * refitted to them and links a narrowed MatchType output no longer fits are dropped; a Custom
 * Combo whose options the edit changed (`options`, observeOptions then) drops emptied ones and
 * moves its choice. Without it (a load) links stay where the file put them, sizes and choices
 * as saved. Returns whether the graph changed. */
export function settleGraph(graph, defs, before = null, options = null) {
  if (!defs) return false;
  let changed = false;
  let templated = false;
  for (const node of graph.nodes) {
    const def = defs[node.type];
    if (!def || node.missing) continue;
    if (def.typed && before && settleOptions(graph, node, options && options.get(node.id))) changed = true;
    if (def.dynamic && settleNode(graph, node, def, before ? before.get(node.id) || NONE : null)) changed = true;
    templated = templated || def.templated;
  }
  if (templated && typeTemplates(graph, (n) => nodeDef(n, defs), !!before)) changed = true;
  if (changed) touch(graph);
  return changed;
}

/** A node just created (before anything links to it): its first copies, option inputs and types. */
export function settleNew(graph, node, defs) {
  const def = defs[node.type];
  if (!def || !(def.dynamic || def.templated)) return;
  if (def.dynamic) settleNode(graph, node, def, NONE);
  if (def.templated) typeNode(graph, node, nodeDef(node, defs), false);
  touch(graph);
}

/** The History hooks that settle each edit before it is recorded (so undo restores both). */
export function settleHooks(getDefs) {
  return {
    observe: (graph) => ({ links: observeLinks(graph, getDefs()), options: observeOptions(graph, getDefs()) }),
    settle: (graph, seen) => settleGraph(graph, getDefs(), (seen && seen.links) || new Map(), seen && seen.options),
  };
}

/** A Custom Combo after an edit: its options and choice settled; a changed choice is copied
 * into the widgets its output drives (sockets converted from widgets), as ComfyUI's frontend
 * shows it there. */
function settleOptions(graph, node, before) {
  if (!before) return false; // added by this edit: as it was made
  const { resized, changed } = settleTypedValues(node.widgets_values, before);
  if (resized) node.size = [node.size[0], 0];
  const choice = node.widgets_values.choice;
  if (choice === before.choice) return changed;
  for (const l of linksFrom(graph, node.id, 0)) {
    const target = getNode(graph, l.target_id);
    const inp = target && target.inputs[l.target_slot];
    if (inp && inp.widget) target.widgets_values[inp.widget] = choice;
  }
  return true;
}

function settleNode(graph, node, def, before) {
  const linked = new Map(); // input name -> the link into it
  node.inputs.forEach((inp, slot) => {
    const l = linkInto(graph, node.id, slot);
    if (l) linked.set(inp.name, l);
  });
  node.widgets_values = node.widgets_values || {};
  const { inputs } = expandInputs(def, {
    value: (name) => node.widgets_values[name],
    count: (group) => {
      if (before) closeGap(group, linked, before);
      return wanted(group, linked);
    },
    given: (name) => linked.has(name),
  });
  const widgets = settleWidgets(node, def, inputs);
  const sockets = settleSockets(graph, node, inputs, linked);
  if (sockets.links || sockets.inputs) touch(graph);
  // an edit that changed the node's inputs refits its height to them, as ComfyUI does
  if ((widgets || sockets.inputs) && before) node.size = [node.size[0], 0];
  return widgets || sockets.inputs || sockets.links;
}

/** An Autogrow copy at or past `min - 1` unlinked by the edit: the later links move up a copy
 * each (ComfyUI's frontend does this on each disconnection), closing the gap. */
function closeGap(group, linked, before) {
  const { names } = group;
  const from = names.findIndex((name, i) => i >= group.min - 1 && before.has(name) && !linked.has(name));
  if (from < 0) return;
  const moving = names.slice(from).map((n) => linked.get(n)).filter(Boolean);
  for (const n of names.slice(from)) linked.delete(n);
  moving.forEach((l, j) => linked.set(names[from + j], l));
}

/** Copies shown: `min` (at least one), and one free after the last linked, within `max`. */
function wanted(group, linked) {
  let last = -1;
  group.names.forEach((name, i) => {
    if (linked.has(name)) last = i;
  });
  return Math.min(group.names.length, Math.max(group.min, 1, last + 2));
}

const putAside = new WeakMap(); // node -> {name: value} of option inputs gone (back when the option is)

/** Values for the widgets an option brought (its defaults, or what the user had set before
 * switching away); values of inputs no option shows any more go. */
function settleWidgets(node, def, inputs) {
  const values = node.widgets_values;
  const aside = putAside.get(node) || {};
  const shown = new Set();
  let changed = false;
  for (const spec of inputs) {
    if (!spec.widget) continue;
    shown.add(spec.name);
    if (spec.name in values) continue;
    values[spec.name] = spec.name in aside ? aside[spec.name] : defaultWidgetValue(spec);
    if (hasControlAfterGenerate(spec)) {
      node.properties = node.properties || {};
      node.properties.control = { ...(node.properties.control || {}), [spec.name]: "randomize" };
    }
    changed = true;
  }
  const roots = new Set(def.inputs.filter((i) => i.dynamic).map((i) => i.name));
  for (const name of Object.keys(values)) {
    const dot = name.indexOf(".");
    if (shown.has(name) || dot < 0 || !roots.has(name.slice(0, dot))) continue;
    aside[name] = values[name];
    delete values[name];
    const control = node.properties && node.properties.control;
    if (control) delete control[name];
    changed = true;
  }
  putAside.set(node, aside);
  return changed;
}

/** The node's sockets in the expanded order (converted widgets after them, as they were);
 * each link follows its input by name, and links into inputs gone are removed. */
function settleSockets(graph, node, inputs, linked) {
  const widgets = new Set();
  for (const spec of inputs) if (spec.widget) widgets.add(spec.name);
  const old = new Map();
  for (const inp of node.inputs) if (!inp.widget) old.set(inp.name, inp);
  const next = [];
  for (const spec of inputs) {
    if (spec.widget) continue;
    next.push(old.get(spec.name) || { name: spec.name, type: spec.type, ...(spec.label ? { label: spec.label } : {}) });
  }
  for (const inp of node.inputs) if (inp.widget && widgets.has(inp.widget)) next.push(inp);
  const changedInputs = next.length !== node.inputs.length || next.some((inp, i) => inp !== node.inputs[i]);
  const slots = new Map(next.map((inp, i) => [inp.name, i]));
  const keep = new Set();
  let links = false;
  for (const [name, l] of linked) {
    const slot = slots.get(name);
    if (slot === undefined) continue;
    keep.add(l);
    if (l.target_slot !== slot) {
      l.target_slot = slot;
      links = true;
    }
  }
  if (keep.size !== linked.size) {
    graph.links = graph.links.filter((l) => l.target_id !== node.id || keep.has(l));
    links = true;
  }
  if (changedInputs) node.inputs = next;
  return { inputs: changedInputs, links };
}
