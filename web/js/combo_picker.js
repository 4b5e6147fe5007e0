// The picker of a combo with many choices (model files, samplers): a filter box over the
// list. Typing narrows it (every word must appear), the arrows (and Page Up/Down) move the
// highlight, Enter picks, Escape or a click elsewhere closes it. It opens on the current value.

/** Combos with more choices than this open the picker; shorter ones a plain menu. */
export const PICKER_MIN_CHOICES = 15;
/** Rows drawn at most; typing narrows the rest. */
const MAX_ROWS = 400;

let current = null;

export function closeComboPicker() {
  if (current) current.close(false);
}

/** Open the picker under `rect` (the widget's client rectangle). */
export function openComboPicker(rect, choices, value, onPick, { missing = "" } = {}) {
  closeComboPicker();
  current = new ComboPicker(rect, choices, value, onPick, missing);
  return current;
}

class ComboPicker {
  constructor(rect, choices, value, onPick, missing) {
    this.choices = choices;
    this.value = value;
    this.onPick = onPick;
    this.shown = [];
    this.active = 0;
    this.el = document.createElement("div");
    this.el.className = "combo-picker";
    this.input = document.createElement("input");
    this.input.className = "combo-filter";
    this.input.placeholder = `Filter ${choices.length} choices…`;
    this.input.setAttribute("aria-label", "Filter the choices");
    this.input.spellcheck = false;
    this.note = document.createElement("div");
    this.note.className = "combo-note";
    this.note.textContent = missing;
    this.note.hidden = !missing;
    this.count = document.createElement("div");
    this.count.className = "combo-count";
    this.list = document.createElement("ul");
    this.list.className = "combo-options";
    this.list.setAttribute("role", "listbox");
    this.el.append(this.input, this.note, this.count, this.list);
    document.body.appendChild(this.el);
    this.place(rect);
    this.bind();
    this.filter(true);
    this.input.focus();
    setTimeout(() => this.el.isConnected && document.activeElement !== this.input && this.input.focus(), 0);
  }

  place(rect) {
    const w = Math.max(260, rect.width);
    this.el.style.width = `${w}px`;
    this.el.style.left = `${Math.max(4, Math.min(rect.left, window.innerWidth - w - 8))}px`;
    const below = window.innerHeight - (rect.top + rect.height) - 8;
    if (below >= 240 || below >= rect.top) {
      this.el.style.top = `${rect.top + rect.height + 2}px`;
      this.el.style.maxHeight = `${Math.max(160, below)}px`;
    } else {
      this.el.style.bottom = `${window.innerHeight - rect.top + 2}px`;
      this.el.style.maxHeight = `${Math.max(160, rect.top - 8)}px`;
    }
  }

  bind() {
    this.input.addEventListener("input", () => this.filter(false));
    this.input.addEventListener("keydown", (e) => this.onKey(e));
    this.list.addEventListener("mousedown", (e) => e.preventDefault()); // keep the focus in the filter
    this.list.addEventListener("click", (e) => {
      const li = e.target.closest("li[data-index]");
      if (li) this.pick(Number(li.dataset.index));
    });
    this.outside = (e) => {
      if (!this.el.contains(e.target)) this.close(true);
    };
    document.addEventListener("pointerdown", this.outside, true);
  }

  /** Show the choices that contain every typed word; the highlight starts on the current value. */
  filter(initial) {
    const terms = this.input.value.toLowerCase().split(/\s+/).filter(Boolean);
    this.shown = this.choices.filter((c) => {
      const s = String(c).toLowerCase();
      return terms.every((t) => s.includes(t));
    });
    const at = this.shown.findIndex((c) => c === this.value);
    this.active = initial && at >= 0 ? at : 0;
    this.list.textContent = "";
    this.shown.slice(0, MAX_ROWS).forEach((c, i) => {
      const li = document.createElement("li");
      li.dataset.index = String(i);
      li.setAttribute("role", "option");
      li.textContent = String(c);
      if (c === this.value) li.classList.add("current");
      this.list.appendChild(li);
    });
    const more = this.shown.length - MAX_ROWS;
    this.count.textContent = terms.length || more > 0
      ? `${this.shown.length} of ${this.choices.length}${more > 0 ? ` (first ${MAX_ROWS} shown: type to narrow)` : ""}`
      : `${this.choices.length} choices`;
    if (!this.shown.length) {
      const li = document.createElement("li");
      li.className = "combo-none";
      li.textContent = "Nothing matches.";
      this.list.appendChild(li);
    }
    this.highlight();
  }

  highlight() {
    for (const li of this.list.querySelectorAll("li.active")) {
      li.classList.remove("active");
      li.setAttribute("aria-selected", "false");
    }
    const li = this.list.querySelector(`li[data-index="${this.active}"]`);
    if (!li) return;
    li.classList.add("active");
    li.setAttribute("aria-selected", "true");
    li.scrollIntoView({ block: "nearest" });
  }

  onKey(e) {
    e.stopPropagation();
    const last = Math.min(this.shown.length, MAX_ROWS) - 1;
    const step = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 }[e.key];
    if (step) {
      e.preventDefault();
      this.active = Math.max(0, Math.min(last, this.active + step));
      this.highlight();
    } else if (e.key === "Enter") {
      e.preventDefault();
      this.pick(this.active);
    } else if (e.key === "Escape" || e.key === "Tab") {
      e.preventDefault();
      this.close(true);
    }
  }

  pick(i) {
    if (i < 0 || i >= this.shown.length) return;
    const value = this.shown[i];
    this.close(true);
    this.onPick(value);
  }

  /** Remove the picker; `refocus` hands the keyboard back to the canvas. */
  close(refocus) {
    if (current === this) current = null;
    document.removeEventListener("pointerdown", this.outside, true);
    this.el.remove();
    const canvas = document.getElementById("canvas");
    if (refocus && canvas) canvas.focus({ preventScroll: true });
  }
}
