// Workflow documents in and out: Weft's own document, ComfyUI UI-format files, API-format
// prompts (export for the server, import as a graph), and the text chunks of PNG files.

import {
  FORMAT, FORMAT_VERSION, MODE_ALWAYS, MODE_BYPASS, MODE_MUTED, VIRTUAL_TYPES,
  clone, defaultSize, defaultWidgetValue, emptyGraph, getNode, hasControlAfterGenerate, linkInto, touch,
  typesCompatible,
} from "./state.js";
import { expandedDef, nodeDef, settleGraph } from "./dynamic.js";
import { typedFileValues } from "./custom_combo.js";

export const CONTROL_MODES = ["fixed", "increment", "decrement", "randomize"];

/** The document saved to disk / local storage. */
export function toDocument(graph) {
  const doc = clone(graph);
  doc.format = FORMAT;
  doc.version = FORMAT_VERSION;
  return doc;
}

/** Read any supported workflow JSON into a Weft graph. Throws with a readable message. */
export function fromAnyDocument(data, defs) {
  const graph = readDocument(data, defs);
  settleGraph(graph, defs); // dynamic inputs' copies and options, templated socket types (dynamic.js)
  return graph;
}

function readDocument(data, defs) {
  if (typeof data === "string") data = JSON.parse(data);
  if (!data || typeof data !== "object") throw new Error("not a workflow: expected a JSON object");
  if (data.format === FORMAT) return fromWeftDocument(data, defs);
  if (data.workflow && typeof data.workflow === "object" && Array.isArray(data.workflow.nodes)) {
    return readDocument(data.workflow, defs);
  }
  if (Array.isArray(data.nodes)) return fromComfyWorkflow(data, defs);
  if (data.prompt && typeof data.prompt === "object" && !Array.isArray(data.prompt)) {
    return fromApiPrompt(data.prompt, defs);
  }
  const values = Object.values(data);
  if (values.length && values.every((v) => v && typeof v === "object" && "class_type" in v)) {
    return fromApiPrompt(data, defs);
  }
  throw new Error("not a workflow: no nodes found (expected a Weft or ComfyUI workflow, or an API-format prompt)");
}

function fromWeftDocument(doc, defs = {}) {
  if (doc.version > FORMAT_VERSION) {
    throw new Error(`this workflow was saved by a newer Weft (format ${doc.version}); update Weft to open it`);
  }
  const graph = Object.assign(emptyGraph(), clone(doc));
  graph.groups = graph.groups || [];
  graph.links = graph.links || [];
  graph.extra = graph.extra || { ds: { scale: 1, offset: [0, 0] } };
  const missing = new Set();
  for (const node of graph.nodes) {
    node.type = resolveType(node.type, node.properties, defs);
    const known = defs[node.type] || VIRTUAL_TYPES.has(node.type);
    if (!known && Object.keys(defs).length) {
      node.missing = true;
      missing.add(node.type);
    } else if (known) delete node.missing;
  }
  if (missing.size) graph.extra.missing_types = [...missing];
  else delete graph.extra.missing_types;
  touch(graph);
  return graph;
}

// ---- ComfyUI UI format -----------------------------------------------------------------

function xy(v, fallback = [0, 0]) {
  if (Array.isArray(v)) return [Number(v[0]) || 0, Number(v[1]) || 0];
  if (v && typeof v === "object") return [Number(v[0] ?? v.x) || 0, Number(v[1] ?? v.y) || 0];
  return fallback;
}

/** Map ComfyUI's positional widgets_values to {name: value} using the node definition. */
function widgetValuesFromArray(def, values, properties) {
  const out = {};
  if (!Array.isArray(values)) {
    if (values && typeof values === "object") Object.assign(out, values);
    return out;
  }
  let i = 0;
  for (const input of def.inputs) {
    if (!input.widget) continue;
    if (i >= values.length) break;
    out[input.name] = values[i++];
    if (hasControlAfterGenerate(input) && typeof values[i] === "string" && CONTROL_MODES.includes(values[i])) {
      properties.control = properties.control || {};
      properties.control[input.name] = values[i++];
    }
    if (input.opts && input.opts.image_upload && (values[i] === "image" || values[i] === null || values[i] === undefined)) {
      i++; // the upload button's placeholder value
    }
  }
  return out;
}

/** A node saved where another pack owned its plain id maps to "<pack>::<type>" here. */
function resolveType(type, properties, defs) {
  const pack = properties && properties.cnr_id;
  const def = defs[type];
  if (pack && def && def.pack && def.pack.name && def.pack.name !== pack && defs[`${pack}::${type}`]) return `${pack}::${type}`;
  if (pack && !def && defs[`${pack}::${type}`]) return `${pack}::${type}`;
  return type;
}

function fromComfyWorkflow(wf, defs) {
  const graph = emptyGraph();
  const srcNodes = new Map();
  const warnings = [];
  for (const n of wf.nodes || []) {
    srcNodes.set(n.id, n);
    const node = comfyNode(n, defs, warnings);
    graph.nodes.push(node);
    graph.last_node_id = Math.max(graph.last_node_id, node.id);
  }
  touch(graph);
  for (const l of wf.links || []) {
    const link = comfyLink(graph, srcNodes, l);
    if (!link) continue;
    graph.links.push(link);
    graph.last_link_id = Math.max(graph.last_link_id, link.id);
  }
  for (const g of wf.groups || []) {
    graph.groups.push({ title: g.title || "Group", bounding: (g.bounding || [0, 0, 300, 200]).slice(0, 4).map(Number), color: g.color || "#3f789e" });
  }
  if (typeof wf.id === "string") graph.id = wf.id;
  const ds = wf.extra && wf.extra.ds;
  if (ds) graph.extra.ds = { scale: Number(ds.scale) || 1, offset: xy(ds.offset) };
  touch(graph);
  if (warnings.length) graph.extra.missing_types = [...new Set(warnings)];
  return graph;
}

/** One node of a ComfyUI workflow; its type goes to warnings when the server lacks it. */
function comfyNode(n, defs, warnings) {
  const type = resolveType(n.type, n.properties, defs);
  const def = defs[type];
  const node = {
    id: Number(n.id),
    type,
    pos: xy(n.pos),
    size: xy(n.size, [200, 0]),
    mode: n.mode === MODE_MUTED || n.mode === MODE_BYPASS ? n.mode : MODE_ALWAYS,
    inputs: [],
    outputs: [],
    widgets_values: {},
    properties: {},
  };
  for (const key of ["cnr_id", "ver", "aux_id"]) if (n.properties && n.properties[key] !== undefined) node.properties[key] = n.properties[key];
  if (n.title && (!def || n.title !== def.display_name)) node.title = n.title;
  if (n.color) node.color = n.color;
  if (n.bgcolor) node.bgcolor = n.bgcolor;
  if (n.flags && n.flags.collapsed) node.collapsed = true;
  if (def && !VIRTUAL_TYPES.has(n.type)) comfyKnownNode(node, n, def);
  else {
    if (!def && !VIRTUAL_TYPES.has(n.type)) {
      node.missing = true;
      warnings.push(n.type);
    }
    comfyOtherNode(node, n);
  }
  if (node.size[0] <= 0) node.size = defaultSize(node, def);
  return node;
}

/** A node the server defines: sockets and widgets come from its definition. */
function comfyKnownNode(node, n, def) {
  if (def.dynamic) def = comfyDynamicDef(def, n);
  node.widgets_values = widgetValuesFromArray(def, n.widgets_values, node.properties);
  for (const input of def.inputs) {
    if (input.widget && !(input.name in node.widgets_values)) node.widgets_values[input.name] = defaultWidgetValue(input);
    if (!input.widget) node.inputs.push({ name: input.name, type: input.type, ...(input.label ? { label: input.label } : {}) });
  }
  // widgets ComfyUI had converted to sockets, and linked
  for (const inp of n.inputs || []) {
    const wname = inp.widget && inp.widget.name;
    if (wname && inp.link != null && def.inputs.some((d) => d.name === wname && d.widget)) {
      const spec = def.inputs.find((d) => d.name === wname);
      node.inputs.push({ name: wname, type: spec.type, widget: wname, ...(spec.label ? { label: spec.label } : {}) });
    }
  }
  node.outputs = def.outputs.map((o) => ({ name: o.name, type: o.type }));
}

/** The inputs a ComfyUI node with dynamic inputs had: its options are read from its positional
 * widget values (each option's widgets follow its combo, so reading them again after each
 * option found settles in as many rounds as options are nested; a Custom Combo's typed options
 * are read at once), its copies from its sockets. */
function comfyDynamicDef(def, n) {
  const present = new Set((n.inputs || []).map((i) => i.name));
  const given = new Set((n.inputs || []).filter((i) => i.link != null).map((i) => i.name));
  let values = typedFileValues(def, n.widgets_values);
  let shown = null;
  for (let round = 0; round < 16; round++) {
    const flat = expandedDef(def, (name) => values[name], present, given);
    const names = flat.inputs.filter((i) => i.widget).map((i) => i.name).join("\u0000");
    if (names === shown) return flat;
    shown = names;
    values = widgetValuesFromArray(flat, n.widgets_values, {});
  }
  return expandedDef(def, (name) => values[name], present, given);
}

/** An editor-only node (reroute, note, primitive) or a missing one: keep what the file says. */
function comfyOtherNode(node, n) {
  node.inputs = (n.inputs || []).map((i) => ({ name: i.name || "", type: String(i.type ?? "*") }));
  node.outputs = (n.outputs || []).map((o) => ({ name: o.name || "", type: String(o.type ?? "*") }));
  if (n.type === "Note" || n.type === "MarkdownNote") node.widgets_values = { text: (n.widgets_values || [""])[0] ?? "" };
  else if (n.type === "PrimitiveNode") {
    const vals = n.widgets_values || [];
    node.widgets_values = { value: vals[0] };
    if (typeof vals[1] === "string" && CONTROL_MODES.includes(vals[1])) node.properties.control = { value: vals[1] };
  } else if (Array.isArray(n.widgets_values)) {
    node.properties.widgets_values = n.widgets_values;
  }
}

/** A ComfyUI link (array or object form) between nodes read into graph, or null. */
function comfyLink(graph, srcNodes, raw) {
  const l = Array.isArray(raw)
    ? { id: raw[0], origin_id: raw[1], origin_slot: raw[2], target_id: raw[3], target_slot: raw[4], type: raw[5] }
    : { id: raw.id, origin_id: raw.origin_id, origin_slot: raw.origin_slot, target_id: raw.target_id, target_slot: raw.target_slot, type: raw.type };
  const src = srcNodes.get(l.origin_id);
  const dst = srcNodes.get(l.target_id);
  const origin = getNode(graph, Number(l.origin_id));
  const target = getNode(graph, Number(l.target_id));
  if (!src || !dst || !origin || !target) return null;
  // resolve slots by name, since our socket order may differ from the file's
  const srcOut = (src.outputs || [])[l.origin_slot];
  let oSlot = l.origin_slot;
  if (srcOut && origin.outputs[oSlot]?.name !== srcOut.name) {
    const byName = origin.outputs.findIndex((o) => o.name === srcOut.name);
    if (byName >= 0) oSlot = byName;
  }
  const dstIn = (dst.inputs || [])[l.target_slot];
  let tSlot = l.target_slot;
  if (dstIn) {
    const byName = target.inputs.findIndex((i) => i.name === (dstIn.widget ? dstIn.widget.name : dstIn.name));
    if (byName >= 0) tSlot = byName;
  }
  if (!origin.outputs[oSlot] || !target.inputs[tSlot]) return null;
  return { id: Number(l.id), origin_id: origin.id, origin_slot: oSlot, target_id: target.id, target_slot: tSlot, type: l.type ?? origin.outputs[oSlot].type };
}

/** The graph in ComfyUI's UI format (version 0.4), so ComfyUI's frontend can open it. */
export function toComfyWorkflow(graph, defs) {
  const links = graph.links.map((l) => [l.id, l.origin_id, l.origin_slot, l.target_id, l.target_slot, l.type]);
  const nodes = graph.nodes.map((node, order) => {
    const def = nodeDef(node, defs);
    const out = {
      id: node.id, type: node.type, pos: node.pos.slice(), size: [node.size[0], node.size[1] || 60],
      flags: node.collapsed ? { collapsed: true } : {}, order, mode: node.mode, inputs: [], outputs: [],
      properties: { ...node.properties }, widgets_values: [],
    };
    delete out.properties.control;
    delete out.properties.widgets_values;
    if (node.title) out.title = node.title;
    if (node.color) out.color = node.color;
    if (node.bgcolor) out.bgcolor = node.bgcolor;
    node.inputs.forEach((inp, slot) => {
      const l = linkInto(graph, node.id, slot);
      const entry = { name: inp.name, type: inp.type, link: l ? l.id : null };
      if (inp.label) entry.label = inp.label;
      if (inp.widget) entry.widget = { name: inp.widget };
      out.inputs.push(entry);
    });
    node.outputs.forEach((o, slot) => {
      const ls = graph.links.filter((l) => l.origin_id === node.id && l.origin_slot === slot).map((l) => l.id);
      out.outputs.push({ name: o.name, type: o.type, links: ls.length ? ls : null, slot_index: slot });
    });
    const control = node.properties.control || {};
    if (def && !VIRTUAL_TYPES.has(node.type)) {
      for (const spec of def.inputs) {
        if (!spec.widget) continue;
        out.widgets_values.push(node.widgets_values[spec.name]);
        if (spec.name in control) out.widgets_values.push(control[spec.name]);
        if (spec.opts && spec.opts.image_upload) out.widgets_values.push("image");
      }
    } else if (node.type === "Note" || node.type === "MarkdownNote") out.widgets_values = [node.widgets_values.text ?? ""];
    else if (node.type === "PrimitiveNode") {
      out.widgets_values = [node.widgets_values.value];
      if (control.value) out.widgets_values.push(control.value);
    } else if (Array.isArray(node.properties.widgets_values)) out.widgets_values = node.properties.widgets_values;
    else out.widgets_values = Object.values(node.widgets_values);
    return out;
  });
  return {
    ...(graph.id ? { id: graph.id } : {}),
    last_node_id: graph.last_node_id, last_link_id: graph.last_link_id, nodes, links,
    groups: graph.groups.map((g) => ({ title: g.title, bounding: g.bounding.slice(), color: g.color, font_size: 24, flags: {} })),
    config: {}, extra: { ds: clone(graph.extra.ds || { scale: 1, offset: [0, 0] }) }, version: 0.4,
  };
}

// ---- API format -----------------------------------------------------------------------

/** Follow reroutes, primitives and bypassed nodes to the real source of an input. */
function resolveSource(graph, originId, originSlot, wantType, depth = 0) {
  if (depth > 100) return null;
  const node = getNode(graph, originId);
  if (!node) return null;
  if (node.type === "Reroute") {
    const l = linkInto(graph, node.id, 0);
    return l ? resolveSource(graph, l.origin_id, l.origin_slot, wantType, depth + 1) : null;
  }
  if (node.type === "PrimitiveNode") return { value: node.widgets_values.value };
  if (node.mode === MODE_MUTED) return null;
  if (node.mode === MODE_BYPASS) {
    const outType = node.outputs[originSlot] ? node.outputs[originSlot].type : wantType;
    const candidates = node.inputs.map((inp, i) => ({ inp, i }));
    const same = candidates.find(({ inp, i }) => i === originSlot && typesCompatible(outType, inp.type))
      || candidates.find(({ inp }) => inp.type === outType)
      || candidates.find(({ inp }) => typesCompatible(outType, inp.type) && inp.type !== "*");
    if (!same) return null;
    const l = linkInto(graph, node.id, same.i);
    return l ? resolveSource(graph, l.origin_id, l.origin_slot, wantType, depth + 1) : null;
  }
  return { link: [String(node.id), originSlot] };
}

/** The API-format prompt the server runs. */
export function toApiPrompt(graph, defs) {
  const prompt = {};
  for (const node of graph.nodes) {
    if (VIRTUAL_TYPES.has(node.type) || node.mode !== MODE_ALWAYS) continue;
    const def = nodeDef(node, defs);
    const inputs = {};
    if (def) {
      for (const spec of def.inputs) {
        const slot = node.inputs.findIndex((i) => i.name === spec.name);
        if (spec.widget && slot < 0) {
          if (spec.name in node.widgets_values) inputs[spec.name] = node.widgets_values[spec.name];
          continue;
        }
        const l = slot >= 0 ? linkInto(graph, node.id, slot) : null;
        if (!l) continue;
        const src = resolveSource(graph, l.origin_id, l.origin_slot, spec.type);
        if (!src) continue;
        inputs[spec.name] = src.link ? src.link : src.value;
      }
    } else {
      node.inputs.forEach((inp, slot) => {
        const l = linkInto(graph, node.id, slot);
        const src = l && resolveSource(graph, l.origin_id, l.origin_slot, inp.type);
        if (src) inputs[inp.name] = src.link ? src.link : src.value;
      });
    }
    const entry = { inputs, class_type: node.type };
    entry._meta = { title: node.title || (def ? def.display_name : node.type) };
    prompt[String(node.id)] = entry;
  }
  return prompt;
}

/** A definition as one prompt entry uses it: the options its values chose, the copies it names. */
function apiDef(def, inputs, prompt) {
  if (!def || !def.dynamic) return def;
  const isLink = (v) => Array.isArray(v) && v.length === 2 && prompt[String(v[0])] !== undefined;
  const names = new Set(Object.keys(inputs));
  return expandedDef(def, (name) => (isLink(inputs[name]) ? undefined : inputs[name]), names, names);
}

/** Build a graph from an API-format prompt, laid out in columns by depth. */
function fromApiPrompt(prompt, defs) {
  const graph = emptyGraph();
  const ids = Object.keys(prompt);
  const depth = {};
  const depthOf = (id, seen = new Set()) => {
    if (depth[id] !== undefined) return depth[id];
    if (seen.has(id)) return 0;
    seen.add(id);
    let d = 0;
    for (const v of Object.values(prompt[id].inputs || {})) {
      if (Array.isArray(v) && v.length === 2 && prompt[String(v[0])]) d = Math.max(d, depthOf(String(v[0]), seen) + 1);
    }
    return (depth[id] = d);
  };
  const rows = {};
  const idMap = new Map();
  let nextId = Math.max(0, ...ids.map((i) => parseInt(i, 10)).filter(Number.isFinite)) + 1;
  for (const id of ids) {
    const entry = prompt[id];
    const def = apiDef(defs[entry.class_type], entry.inputs || {}, prompt);
    const d = depthOf(id);
    rows[d] = (rows[d] || 0) + 1;
    const numeric = /^\d+$/.test(id) ? parseInt(id, 10) : nextId++;
    idMap.set(id, numeric);
    const node = {
      id: numeric, type: entry.class_type, pos: [d * 380, (rows[d] - 1) * 260], size: [0, 0], mode: MODE_ALWAYS,
      inputs: [], outputs: [], widgets_values: {}, properties: {},
    };
    if (entry._meta && entry._meta.title && def && entry._meta.title !== def.display_name) node.title = entry._meta.title;
    if (def) {
      node.outputs = def.outputs.map((o) => ({ name: o.name, type: o.type }));
      for (const spec of def.inputs) {
        const v = (entry.inputs || {})[spec.name];
        const isLink = Array.isArray(v) && v.length === 2 && prompt[String(v[0])] !== undefined;
        if (spec.widget) {
          node.widgets_values[spec.name] = v === undefined || isLink ? defaultWidgetValue(spec) : v;
          if (isLink) node.inputs.push({ name: spec.name, type: spec.type, widget: spec.name, ...(spec.label ? { label: spec.label } : {}) });
          if (hasControlAfterGenerate(spec)) node.properties.control = { ...(node.properties.control || {}), [spec.name]: "fixed" };
        } else node.inputs.push({ name: spec.name, type: spec.type, ...(spec.label ? { label: spec.label } : {}) });
      }
    } else {
      node.missing = true;
      for (const [k, v] of Object.entries(entry.inputs || {})) {
        if (Array.isArray(v)) node.inputs.push({ name: k, type: "*" });
        else node.widgets_values[k] = v;
      }
    }
    node.size = defaultSize(node, def);
    graph.nodes.push(node);
    graph.last_node_id = Math.max(graph.last_node_id, numeric);
  }
  touch(graph);
  for (const id of ids) {
    const target = getNode(graph, idMap.get(id));
    for (const [name, v] of Object.entries(prompt[id].inputs || {})) {
      if (!(Array.isArray(v) && v.length === 2 && prompt[String(v[0])] !== undefined)) continue;
      const origin = getNode(graph, idMap.get(String(v[0])));
      const slot = target.inputs.findIndex((i) => i.name === name);
      if (!origin || slot < 0) continue;
      while (origin.missing && origin.outputs.length <= v[1]) origin.outputs.push({ name: "out", type: "*" });
      graph.links.push({
        id: ++graph.last_link_id, origin_id: origin.id, origin_slot: v[1], target_id: target.id, target_slot: slot,
        type: origin.outputs[v[1]] ? origin.outputs[v[1]].type : "*",
      });
    }
  }
  touch(graph);
  return graph;
}

// ---- PNG text chunks ------------------------------------------------------------------

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Read the tEXt / iTXt / zTXt chunks of a PNG file: {keyword: text}. */
export async function readPngText(buffer) {
  const bytes = new Uint8Array(buffer);
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 8 || sig.some((b, i) => bytes[i] !== b)) throw new Error("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8");
  const latin1 = new TextDecoder("latin1");
  const out = {};
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const len = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + len);
    pos += 12 + len;
    if (type === "IEND") break;
    if (type !== "tEXt" && type !== "iTXt" && type !== "zTXt") continue;
    const z = data.indexOf(0);
    if (z < 0) continue;
    const key = latin1.decode(data.subarray(0, z));
    try {
      if (type === "tEXt") out[key] = utf8.decode(data.subarray(z + 1));
      else if (type === "zTXt") out[key] = utf8.decode(await inflate(data.subarray(z + 2)));
      else {
        const compressed = data[z + 1];
        let p = z + 3;
        p = data.indexOf(0, p) + 1; // language tag
        p = data.indexOf(0, p) + 1; // translated keyword
        const body = data.subarray(p);
        out[key] = utf8.decode(compressed ? await inflate(body) : body);
      }
    } catch (e) {
      // an unreadable chunk is skipped, the others may still hold the workflow
    }
  }
  return out;
}

/** The graph embedded in a PNG saved by Weft or ComfyUI. */
export async function graphFromPng(buffer, defs) {
  const text = await readPngText(buffer);
  if (text.weft_workflow) return fromAnyDocument(JSON.parse(text.weft_workflow), defs);
  if (text.workflow) return fromAnyDocument(JSON.parse(text.workflow), defs);
  if (text.prompt) {
    const graph = fromApiPrompt(JSON.parse(text.prompt), defs);
    settleGraph(graph, defs);
    return graph;
  }
  throw new Error("this PNG has no embedded workflow");
}

