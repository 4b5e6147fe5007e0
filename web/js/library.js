// The node library: every node type in a tree of its categories (category "a/b" is folder b
// inside folder a) with a search box. Hovering a node shows its card (inputs, outputs,
// description, pack); dragging it onto the canvas adds it where it is dropped; a click (or
// Enter on a search result) adds it in the middle of the view.

import { VIRTUAL_DEFS } from "./defaults.js";
import { dragToCanvas, registerDock, setDock, viewCentre } from "./dock.js";
import { NodeCard } from "./node_card.js";
import { searchNodes } from "./search.js";

/** {subs: Map(name -> tree), nodes: [def]} of the definitions' categories. */
export function categoryTree(defs) {
  const root = { subs: new Map(), nodes: [], count: 0 };
  for (const def of Object.values(defs)) {
    if (def.hidden) continue;
    let at = root;
    at.count++;
    for (const part of (def.category || "misc").split("/").filter(Boolean)) {
      if (!at.subs.has(part)) at.subs.set(part, { subs: new Map(), nodes: [], count: 0 });
      at = at.subs.get(part);
      at.count++;
    }
    at.nodes.push(def);
  }
  return root;
}

export class NodeLibrary {
  constructor(app, el, button) {
    this.app = app;
    this.el = el;
    this.expanded = new Set();
    this.results = [];
    this.active = 0;
    this.card = new NodeCard("library-card");
    this.build();
    registerDock(el, button, () => this.opened());
  }

  get defs() {
    return { ...this.app.defs, ...VIRTUAL_DEFS };
  }

  build() {
    const head = document.createElement("div");
    head.className = "dock-head";
    const title = document.createElement("h2");
    title.textContent = "Node library";
    const close = document.createElement("button");
    close.className = "close";
    close.title = "Close";
    close.textContent = "×";
    close.addEventListener("click", () => setDock(null));
    head.append(title, close);
    this.input = document.createElement("input");
    this.input.type = "search";
    this.input.className = "library-search";
    this.input.placeholder = "Search nodes…";
    this.input.setAttribute("aria-label", "Search nodes");
    this.input.spellcheck = false;
    this.tree = document.createElement("div");
    this.tree.className = "library-tree";
    this.tree.setAttribute("role", "tree");
    this.el.append(head, this.input, this.tree);
    this.input.addEventListener("input", () => this.render());
    this.input.addEventListener("keydown", (e) => this.onKey(e));
    this.tree.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.tree.addEventListener("pointerover", (e) => this.onHover(e));
    this.tree.addEventListener("pointerleave", () => this.card.hide());
    this.tree.addEventListener("keydown", (e) => {
      const row = e.target.closest(".lib-cat");
      if (row && (e.key === "Enter" || e.key === " ")) {
        e.preventDefault();
        this.toggle(row.dataset.path);
      }
    });
  }

  opened() {
    this.render();
    this.input.focus();
  }

  render() {
    this.card.hide();
    this.tree.textContent = "";
    const query = this.input.value.trim();
    if (query) this.renderResults(query);
    else this.renderLevel(categoryTree(this.defs), "", 0);
  }

  renderResults(query) {
    this.results = searchNodes(this.defs, query, null, 200);
    this.active = Math.min(this.active, Math.max(0, this.results.length - 1));
    if (!this.results.length) {
      const empty = document.createElement("div");
      empty.className = "lib-empty";
      empty.textContent = "No node matches.";
      this.tree.appendChild(empty);
    }
    this.results.forEach((def, i) => {
      const row = this.nodeRow(def, 0);
      const cat = document.createElement("span");
      cat.className = "lib-path";
      cat.textContent = def.category;
      row.appendChild(cat);
      row.classList.toggle("active", i === this.active);
      this.tree.appendChild(row);
    });
  }

  /** One level of the tree: its sub-categories (folded unless opened), then its nodes. */
  renderLevel(level, prefix, depth) {
    for (const name of [...level.subs.keys()].sort((a, b) => a.localeCompare(b))) {
      const sub = level.subs.get(name);
      const path = prefix ? `${prefix}/${name}` : name;
      const open = this.expanded.has(path);
      const row = document.createElement("div");
      row.className = "lib-cat";
      row.dataset.path = path;
      row.tabIndex = 0;
      row.setAttribute("role", "treeitem");
      row.setAttribute("aria-expanded", String(open));
      row.style.paddingLeft = `${6 + depth * 14}px`;
      const caret = document.createElement("span");
      caret.className = "caret";
      caret.textContent = open ? "▾" : "▸";
      const label = document.createElement("span");
      label.className = "lib-cat-name";
      label.textContent = name;
      const count = document.createElement("span");
      count.className = "lib-count";
      count.textContent = String(sub.count);
      row.append(caret, label, count);
      this.tree.appendChild(row);
      if (open) this.renderLevel(sub, path, depth + 1);
    }
    const nodes = [...level.nodes].sort((a, b) => a.display_name.localeCompare(b.display_name));
    for (const def of nodes) this.tree.appendChild(this.nodeRow(def, depth));
  }

  nodeRow(def, depth) {
    const row = document.createElement("div");
    row.className = "lib-node";
    row.dataset.type = def.name;
    row.setAttribute("role", "treeitem");
    row.title = "Drag onto the canvas, or click to add it in the middle of the view";
    row.style.paddingLeft = `${20 + depth * 14}px`;
    const name = document.createElement("span");
    name.className = "lib-node-name";
    name.textContent = def.display_name;
    row.appendChild(name);
    return row;
  }

  toggle(path) {
    if (this.expanded.has(path)) this.expanded.delete(path);
    else this.expanded.add(path);
    this.render();
    const row = this.tree.querySelector(`.lib-cat[data-path="${CSS.escape(path)}"]`);
    if (row) row.focus({ preventScroll: true });
  }

  onPointerDown(e) {
    const cat = e.target.closest(".lib-cat");
    if (cat && e.button === 0) {
      this.toggle(cat.dataset.path);
      return;
    }
    const row = e.target.closest(".lib-node");
    if (!row) return;
    const def = this.defs[row.dataset.type];
    if (!def) return;
    this.card.hide();
    dragToCanvas(this.app, e, def.display_name, (pos) => this.app.addNode(def.name, pos), () => this.app.addNode(def.name, viewCentre(this.app)));
  }

  onHover(e) {
    const row = e.target.closest(".lib-node");
    if (!row) {
      this.card.hide();
      return;
    }
    this.card.show(this.defs[row.dataset.type], row.getBoundingClientRect());
  }

  /** In the search box: arrows walk the results, Enter adds the highlighted one, Escape clears. */
  onKey(e) {
    e.stopPropagation();
    const rows = [...this.tree.querySelectorAll(".lib-node")];
    if ((e.key === "ArrowDown" || e.key === "ArrowUp") && this.results.length && this.input.value.trim()) {
      e.preventDefault();
      this.active = Math.max(0, Math.min(this.results.length - 1, this.active + (e.key === "ArrowDown" ? 1 : -1)));
      rows.forEach((r, i) => r.classList.toggle("active", i === this.active));
      const row = rows[this.active];
      if (row) {
        row.scrollIntoView({ block: "nearest" });
        this.card.show(this.results[this.active], row.getBoundingClientRect());
      }
    } else if (e.key === "Enter" && this.input.value.trim() && this.results[this.active]) {
      e.preventDefault();
      this.app.addNode(this.results[this.active].name, viewCentre(this.app));
    } else if (e.key === "Escape") {
      e.preventDefault();
      if (this.input.value) {
        this.input.value = "";
        this.render();
      } else {
        setDock(null);
        this.app.renderer.canvas.focus({ preventScroll: true });
      }
    } else if (e.key === "Enter" || e.key.length === 1) this.active = 0;
  }
}
