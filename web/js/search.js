// Ranked fuzzy search over the node catalogue, and the menu that uses it.

import { NodeCard } from "./node_card.js";
import { typesCompatible } from "./state.js";

/** Score how well `query` matches `text` (0 = no match). Subsequence match with bonuses
 * for exact, prefix, word starts and runs of consecutive characters. */
function fuzzyScore(query, text) {
  if (!query) return 1;
  if (!text) return 0;
  const q = query.toLowerCase();
  const t = text.toLowerCase();
  if (t === q) return 1000;
  let score = 0;
  const at = t.indexOf(q);
  if (at === 0) score += 600;
  else if (at > 0) score += (isWordStart(text, at) ? 450 : 300) - Math.min(at, 50);
  if (score) return score + 100 / (1 + t.length - q.length);
  // subsequence
  let ti = 0;
  let run = 0;
  for (let qi = 0; qi < q.length; qi++) {
    const c = q[qi];
    if (c === " ") continue;
    let found = -1;
    for (let k = ti; k < t.length; k++) {
      if (t[k] === c) {
        found = k;
        break;
      }
    }
    if (found < 0) return 0;
    if (found === ti && qi > 0) {
      run += 1;
      score += 5 + run * 3;
    } else run = 0;
    if (isWordStart(text, found)) score += 12;
    score += 1;
    score -= Math.min(found - ti, 10) * 0.5;
    ti = found + 1;
  }
  return Math.max(1, score);
}

function isWordStart(text, i) {
  if (i === 0) return true;
  const p = text[i - 1];
  const c = text[i];
  return /[\s_\-/.]/.test(p) || (p === p.toLowerCase() && c !== c.toLowerCase());
}

/** Rank node definitions for a query; all terms must match somewhere. */
export function searchNodes(defs, query, filter = null, limit = 60) {
  const terms = query.trim().split(/\s+/).filter(Boolean);
  const results = [];
  for (const def of Object.values(defs)) {
    if (def.hidden) continue;
    if (filter && !matchesFilter(def, filter)) continue;
    let total = 0;
    let ok = true;
    for (const term of terms) {
      const s = Math.max(
        fuzzyScore(term, def.display_name) * 1.0,
        fuzzyScore(term, def.name) * 0.95,
        fuzzyScore(term, def.category) * 0.45,
        fuzzyScore(term, def.description) * 0.25,
      );
      if (s <= 0) {
        ok = false;
        break;
      }
      total += s;
    }
    if (!ok) continue;
    // whole query against the name rewards ordered multi-word matches
    if (terms.length > 1) total += fuzzyScore(query.trim(), def.display_name) * 0.5;
    if (!terms.length) total = 1;
    results.push({ def, score: total });
  }
  results.sort((a, b) => b.score - a.score || a.def.display_name.localeCompare(b.def.display_name));
  return results.slice(0, limit).map((r) => r.def);
}

/** filter: {from: "output", type} -> nodes with a compatible input; {from: "input", type} -> with an output. */
function matchesFilter(def, filter) {
  if (filter.from === "output") return def.inputs.some((i) => typesCompatible(filter.type, i.type));
  return def.outputs.some((o) => typesCompatible(o.type, filter.type));
}

export class SearchMenu {
  constructor(root, getDefs) {
    this.getDefs = getDefs;
    this.el = document.createElement("div");
    this.el.className = "search-menu";
    this.el.hidden = true;
    this.el.innerHTML = `<input type="text" class="search-input" placeholder="Search nodes…" autocomplete="off" spellcheck="false">
      <div class="search-filter"></div><ul class="search-results" role="listbox"></ul>`;
    root.appendChild(this.el);
    this.input = this.el.querySelector("input");
    this.list = this.el.querySelector("ul");
    this.filterEl = this.el.querySelector(".search-filter");
    this.items = [];
    this.active = 0;
    this.onPick = null;
    this.card = new NodeCard("search-card"); // the highlighted entry's inputs, outputs and pack
    this.input.addEventListener("input", () => this.refresh());
    this.input.addEventListener("keydown", (e) => this.onKey(e));
    this.list.addEventListener("mousedown", (e) => {
      const li = e.target.closest("li");
      if (!li) return;
      e.preventDefault();
      this.pick(Number(li.dataset.index));
    });
    this.list.addEventListener("mousemove", (e) => {
      const li = e.target.closest("li"); // the entry under the pointer is the highlighted one
      if (li && Number(li.dataset.index) !== this.active) {
        this.active = Number(li.dataset.index);
        this.highlight();
      }
    });
    this.generation = 0;
    this.input.addEventListener("blur", () => {
      const gen = this.generation;
      setTimeout(() => {
        if (gen === this.generation && document.activeElement !== this.input) this.close();
      }, 150);
    });
  }

  open(x, y, { filter = null, onPick } = {}) {
    this.generation++;
    this.filter = filter;
    this.onPick = onPick;
    this.el.hidden = false;
    const w = 380;
    this.el.style.left = `${Math.max(4, Math.min(x, window.innerWidth - w - 8))}px`;
    this.el.style.top = `${Math.max(4, Math.min(y, window.innerHeight - 420))}px`;
    this.filterEl.textContent = filter ? `${filter.from === "output" ? "takes" : "gives"} ${filter.type}` : "";
    this.filterEl.hidden = !filter;
    this.input.value = "";
    this.refresh();
    this.input.focus();
  }

  get isOpen() {
    return !this.el.hidden;
  }

  close() {
    if (this.el.hidden) return;
    this.el.hidden = true;
    this.card.hide();
    this.releaseFocus();
    const cb = this.onCancel;
    this.onPick = null;
    if (cb) cb();
  }

  releaseFocus() {
    // keys typed next belong to the canvas again (a hidden input may keep focus for a frame)
    if (document.activeElement === this.input) {
      this.generation++;
      this.input.blur();
      const canvas = document.getElementById("canvas");
      if (canvas) canvas.focus({ preventScroll: true });
    }
  }

  refresh() {
    this.items = searchNodes(this.getDefs(), this.input.value, this.filter);
    this.active = 0;
    this.list.textContent = "";
    this.items.forEach((def, i) => {
      const li = document.createElement("li");
      li.dataset.index = String(i);
      li.dataset.type = def.name;
      li.setAttribute("role", "option");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = def.display_name;
      const cat = document.createElement("span");
      cat.className = "category";
      cat.textContent = def.category;
      li.append(name, cat);
      if (def.description) li.title = def.description;
      this.list.appendChild(li);
    });
    this.highlight();
  }

  highlight() {
    [...this.list.children].forEach((li, i) => li.classList.toggle("active", i === this.active));
    const li = this.list.children[this.active];
    if (li) li.scrollIntoView({ block: "nearest" });
    this.card.show(this.items[this.active], this.el.getBoundingClientRect());
  }

  onKey(e) {
    if (e.key === "ArrowDown") {
      this.active = Math.min(this.items.length - 1, this.active + 1);
      this.highlight();
      e.preventDefault();
    } else if (e.key === "ArrowUp") {
      this.active = Math.max(0, this.active - 1);
      this.highlight();
      e.preventDefault();
    } else if (e.key === "Enter") {
      e.preventDefault();
      this.pick(this.active);
    } else if (e.key === "Escape") {
      e.preventDefault();
      this.close();
    }
    e.stopPropagation();
  }

  pick(i) {
    const def = this.items[i];
    if (!def) return;
    const cb = this.onPick;
    this.onPick = null;
    this.onCancel = null;
    this.el.hidden = true;
    this.card.hide();
    this.releaseFocus();
    if (cb) cb(def);
  }
}
