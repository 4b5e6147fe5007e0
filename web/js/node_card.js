// The preview card of a node type: its inputs with their types, outputs, description and the
// pack (python_module) that provides it. The node library shows it for the row under the
// pointer, the search menu for its highlighted entry; one floating element each, placed
// beside what it describes.

import { typeColor } from "./layout.js";

export class NodeCard {
  constructor(className = "") {
    this.el = document.createElement("div");
    this.el.className = `node-card ${className}`.trim();
    this.el.setAttribute("role", "tooltip");
    this.el.hidden = true;
    this.shown = null;
    document.body.appendChild(this.el);
  }

  /** Show `def` beside `anchor` (a DOMRect): to its right, or to its left when that does not fit. */
  show(def, anchor) {
    if (!def) {
      this.hide();
      return;
    }
    if (this.shown !== def) {
      this.shown = def;
      this.el.textContent = "";
      this.el.dataset.type = def.name;
      fillCard(this.el, def);
    }
    this.el.hidden = false;
    const w = this.el.offsetWidth;
    const h = this.el.offsetHeight;
    let left = anchor.right + 8;
    if (left + w > window.innerWidth - 4) left = Math.max(4, anchor.left - w - 8);
    const top = Math.max(4, Math.min(anchor.top, window.innerHeight - h - 4));
    this.el.style.left = `${left}px`;
    this.el.style.top = `${top}px`;
  }

  hide() {
    this.el.hidden = true;
  }
}

/** The card's contents for one definition (text only: names and descriptions come from the server). */
export function fillCard(el, def) {
  el.appendChild(div("card-title", def.display_name));
  el.appendChild(div("card-name", def.category ? `${def.name} · ${def.category}` : def.name));
  if (def.description) el.appendChild(div("card-desc", def.description));
  const inputs = def.inputs;
  el.appendChild(div("card-section", inputs.length ? "Inputs" : "No inputs"));
  if (inputs.length) el.appendChild(list("card-inputs", inputs.map((i) => [i.name, inputType(i), i.optional])));
  el.appendChild(div("card-section", def.outputs.length ? "Outputs" : "No outputs"));
  if (def.outputs.length) el.appendChild(list("card-outputs", def.outputs.map((o) => [o.name || o.type, [o.type, o.is_list ? "list" : ""], false])));
  const pack = def.pack && def.pack.name ? `${def.pack.name}${def.pack.version ? ` ${def.pack.version}` : ""}` : "";
  const module = def.virtual ? "editor only" : def.python_module || "";
  const source = [pack && `pack ${pack}`, module].filter(Boolean).join(" · ");
  if (source) el.appendChild(div("card-source", source));
  if (def.output_node) el.appendChild(div("card-flag", "output node"));
}

/** [type, detail] of an input: a combo's number of choices (and folder), a number's range. */
function inputType(spec) {
  const o = spec.opts || {};
  if (spec.dynamic === "autogrow") {
    const t = spec.template || {};
    const most = Array.isArray(t.names) ? t.names.length : t.max ?? 10;
    return [spec.type, `${t.min ?? 1} to ${most} copies`];
  }
  if (spec.type === "COMBO") {
    const n = (spec.choices || []).length;
    const folder = o.model_folder ? ` · models/${o.model_folder}/` : "";
    return ["COMBO", `${n} choice${n === 1 ? "" : "s"}${folder}`];
  }
  // a range worth reading: bounds as wide as a 32-bit integer are no bound to a user
  const bound = (v) => (Number.isFinite(v) && Math.abs(v) < 2 ** 31 - 1 ? v : null);
  const [lo, hi] = [bound(o.min), bound(o.max)];
  if ((spec.type === "INT" || spec.type === "FLOAT") && (lo !== null || hi !== null)) {
    return [spec.type, `${lo ?? "…"} to ${hi ?? "…"}`];
  }
  return [spec.type, ""];
}

function div(className, text) {
  const el = document.createElement("div");
  el.className = className;
  el.textContent = text;
  return el;
}

function list(className, rows) {
  const ul = document.createElement("ul");
  ul.className = className;
  for (const [name, [type, detail], optional] of rows) {
    const li = document.createElement("li");
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.style.background = typeColor(type);
    const label = document.createElement("span");
    label.className = "slot-name";
    label.textContent = name;
    const t = document.createElement("span");
    t.className = "slot-type";
    t.textContent = [type, detail, optional ? "optional" : ""].filter(Boolean).join(" · ");
    li.append(dot, label, t);
    ul.appendChild(li);
  }
  return ul;
}
