// What a loaded workflow needs that the server lacks: combo values not in the server's list
// (model files with the folder each belongs in, input images, other choices) and node types
// it does not know. The widgets are marked where they are drawn (comboHas, in paint.js);
// the "Missing models and nodes" dialog lists everything at once when a workflow opens.

import { isWidgetConverted } from "./state.js";

/** Folders of ComfyUI's usual file inputs, for packs whose inputs do not name theirs
 * (Weft's own loaders publish `model_folder` in /object_info). "Class.input" wins over "input". */
const FOLDER_BY_INPUT = {
  "CLIPVisionLoader.clip_name": "clip_vision", "UpscaleModelLoader.model_name": "upscale_models",
  ckpt_name: "checkpoints", lora_name: "loras", vae_name: "vae", control_net_name: "controlnet",
  unet_name: "diffusion_models", clip_name: "text_encoders", clip_name1: "text_encoders",
  clip_name2: "text_encoders", clip_name3: "text_encoders", config_name: "configs",
  style_model_name: "style_models", gligen_name: "gligen", hypernetwork_name: "hypernetworks",
  upscale_model: "upscale_models", model_path: "diffusers",
};
const MODEL_FILE = /\.(safetensors|sft|ckpt|pt|pth|bin|gguf)$/i;

const choiceSets = new WeakMap();

/** Whether a combo's current value is one of its choices (a Set per spec, kept while the list is). */
export function comboHas(spec, value) {
  if (spec.dynamic === "typed" && value === "") return true; // a Custom Combo with nothing chosen yet
  const choices = spec.choices || [];
  let entry = choiceSets.get(spec);
  if (!entry || entry.list !== choices || entry.length !== choices.length) {
    entry = { list: choices, length: choices.length, set: new Set(choices.map(String)) };
    choiceSets.set(spec, entry);
  }
  return entry.set.has(String(value));
}

/** Where a missing value of this input belongs: "models/<folder>/", "input/", or null (a plain choice). */
export function folderFor(nodeType, spec, value) {
  const opts = spec.opts || {};
  if (opts.image_upload || opts.image_folder === "input") return "input/";
  const folder = opts.model_folder || FOLDER_BY_INPUT[`${nodeType}.${spec.name}`] || FOLDER_BY_INPUT[spec.name];
  if (folder) return `models/${folder}/`;
  return MODEL_FILE.test(String(value)) ? "models/" : null;
}

/** The tooltip of a marked widget: what is missing and where it goes. */
export function missingNote(node, spec, value) {
  const folder = folderFor(node.type, spec, value);
  if (folder) return `"${value}" is not on the server: put it in ${folder} and press R to refresh.`;
  return `"${value}" is not one of this input's choices here; pick another.`;
}

/**
 * Everything a graph needs that the server lacks:
 * {files: [{value, folder, uses: [{node, input}]}], values: [{node, input, value}], types: [{type, nodes}]}.
 */
export function findMissing(graph, defFor) {
  const files = new Map();
  const values = [];
  const types = new Map();
  for (const node of graph.nodes) {
    if (node.missing) {
      if (!types.has(node.type)) types.set(node.type, { type: node.type, nodes: [] });
      types.get(node.type).nodes.push(node.id);
      continue;
    }
    const def = defFor(node);
    if (!def || def.virtual) continue;
    for (const spec of def.inputs) {
      // a Custom Combo's choice is whatever its options say (the server takes any)
      if (spec.type !== "COMBO" || !spec.widget || spec.dynamic === "typed" || isWidgetConverted(node, spec.name)) continue;
      const value = node.widgets_values[spec.name];
      if (value === undefined || value === null || value === "" || comboHas(spec, value)) continue;
      const folder = folderFor(node.type, spec, value);
      if (!folder) {
        values.push({ node: node.id, input: spec.name, value });
        continue;
      }
      const key = `${folder}\u0000${value}`;
      if (!files.has(key)) files.set(key, { value: String(value), folder, uses: [] });
      files.get(key).uses.push({ node: node.id, input: spec.name });
    }
  }
  return { files: [...files.values()], values, types: [...types.values()] };
}

export function isEmptyReport(report) {
  return !report.files.length && !report.values.length && !report.types.length;
}

/** The dialog that lists what a workflow lacks; one at a time, closed by its button or Esc. */
export class MissingDialog {
  constructor(app) {
    this.app = app;
    this.el = null;
  }

  /** Check a graph just opened; show the dialog when it lacks anything. */
  check(graph) {
    const report = findMissing(graph, (n) => this.app.defFor(n));
    if (isEmptyReport(report)) {
      this.close();
      return report;
    }
    this.show(report, graph);
    return report;
  }

  close() {
    if (this.el) this.el.remove();
    this.el = null;
  }

  show(report, graph) {
    this.close();
    const el = document.createElement("div");
    el.id = "missing-dialog";
    el.setAttribute("role", "dialog");
    el.setAttribute("aria-labelledby", "missing-title");
    const head = document.createElement("div");
    head.className = "missing-head";
    const h = document.createElement("h2");
    h.id = "missing-title";
    h.textContent = "Missing models and nodes";
    const close = button("×", "Close", () => this.close());
    close.className = "close";
    head.append(h, close);
    const intro = document.createElement("p");
    intro.textContent = "This workflow uses files and node types this server does not have. "
      + "The marked widgets and red nodes will not run until they are there: put each file in the folder named, then press R.";
    el.append(head, intro);
    if (report.files.length) el.appendChild(this.filesSection(report.files));
    if (report.types.length) el.appendChild(this.typesSection(report.types, graph));
    if (report.values.length) el.appendChild(this.valuesSection(report.values));
    const foot = document.createElement("div");
    foot.className = "missing-foot";
    foot.appendChild(button("Close", "Close this list", () => this.close()));
    el.appendChild(foot);
    el.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        this.close();
        document.getElementById("canvas").focus({ preventScroll: true });
      }
    });
    document.body.appendChild(el);
    this.el = el;
    el.tabIndex = -1;
    el.focus({ preventScroll: true });
  }

  filesSection(files) {
    const rows = files.map((f) => [cell(f.value, "file"), cell(f.folder, "folder"), this.usesCell(f.uses.map((u) => [u.node, u.input]))]);
    return section("Files", ["File", "Put it in", "Used by"], rows, "missing-files");
  }

  typesSection(types, graph) {
    const rows = types.map((t) => [cell(t.type, "type"), cell("", "pack"), this.usesCell(t.nodes.map((id) => [id, null]))]);
    const el = section("Node types", ["Node type", "Pack", "Nodes"], rows, "missing-types");
    this.fillPacks(el, types, graph);
    return el;
  }

  valuesSection(values) {
    const rows = values.map((v) => [cell(String(v.value), "value"), cell(v.input, "input"), this.usesCell([[v.node, v.input]])]);
    return section("Values not in the list", ["Value", "Input", "Node"], rows, "missing-values");
  }

  /** Links to the nodes that use something missing: a click shows the node. */
  usesCell(uses) {
    const td = document.createElement("td");
    for (const [id, input] of uses) {
      const node = this.app.graph.nodes.find((n) => n.id === id);
      const def = node && this.app.defFor(node);
      const name = node ? node.title || (def ? def.display_name : node.type) : `#${id}`;
      const b = button(`${name} #${id}${input ? ` · ${input}` : ""}`, "Show this node", () => this.app.focusNode(id));
      b.className = "small node-link";
      b.dataset.node = String(id);
      td.appendChild(b);
    }
    return td;
  }

  /** Name the packs that provide the missing types, where the server knows them. */
  async fillPacks(el, types, graph) {
    let packs = [];
    try {
      const res = await this.app.api.fetchJson("/plugins/missing", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ workflow: graph }),
      });
      packs = res && res.packs ? res.packs : [];
    } catch {
      return; // the server may not know packs; the types alone still help
    }
    types.forEach((t, i) => {
      const pack = packs.find((p) => (p.node_types || []).includes(t.type));
      const td = el.querySelectorAll("td.pack")[i];
      if (pack && td) td.textContent = `${pack.name}${pack.version ? ` ${pack.version}` : ""}${pack.installed_status ? ` (${pack.installed_status} here)` : ""}`;
    });
  }
}

function button(text, title, onClick) {
  const b = document.createElement("button");
  b.textContent = text;
  b.title = title;
  b.addEventListener("click", onClick);
  return b;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.className = className;
  td.textContent = text;
  return td;
}

function section(title, headers, rows, className) {
  const el = document.createElement("section");
  el.className = className;
  const h = document.createElement("h3");
  h.textContent = `${title} (${rows.length})`;
  const table = document.createElement("table");
  const tr = table.createTHead().insertRow();
  for (const name of headers) tr.appendChild(Object.assign(document.createElement("th"), { textContent: name }));
  const body = table.createTBody();
  for (const cells of rows) body.insertRow().append(...cells);
  el.append(h, table);
  return el;
}
