// The settings dialog (Ctrl+, or ⚙): every setting of settings.js, saved on the server as it
// changes, and the keyboard shortcut editor (press the new keys; a key another command had
// moves, after asking; Reset goes back to ComfyUI's default).

import { NEW_BINDINGS, UNSET_BINDINGS, comboFromEvent, comboText } from "./keybindings.js";
import { confirmDialog, showDialog } from "./overlays.js";
import { SETTINGS } from "./settings.js";
import { el } from "./dom.js";

export class SettingsPanel {
  constructor(app) {
    this.app = app;
  }

  get open() {
    return !!document.getElementById("settings-dialog");
  }

  toggle() {
    if (this.open) this.close();
    else this.show();
  }

  close() {
    const dialog = document.getElementById("settings-dialog");
    if (dialog) dialog.querySelector(".weft-dialog-head button").click();
  }

  show() {
    return showDialog({
      title: "Settings",
      id: "settings-dialog",
      build: (body, dialog) => this.build(body, dialog),
      buttons: [{ label: "Close", value: null }],
    });
  }

  build(body, dialog) {
    this.dialog = dialog;
    let section = null;
    for (const def of SETTINGS) {
      if (!section || section.dataset.section !== def.section) {
        section = el("section", "settings-section");
        section.dataset.section = def.section;
        section.appendChild(el("h3", "", def.section));
        body.appendChild(section);
      }
      section.appendChild(this.settingRow(def));
    }
    body.appendChild(this.keysSection());
  }

  /** One setting: its label, its control and a line of help; saved on change. */
  settingRow(def) {
    const row = el("div", "setting-row");
    row.dataset.setting = def.id;
    const label = el("label", "setting-label", def.label);
    const control = this.control(def, row);
    control.id = `setting-${def.id.replace(/[^A-Za-z0-9_-]/g, "-")}`;
    label.htmlFor = control.id;
    row.append(label, control);
    if (def.help) row.appendChild(el("div", "setting-help", def.help));
    row.appendChild(Object.assign(el("div", "setting-error"), { hidden: true }));
    return row;
  }

  control(def, row) {
    const prefs = this.app.prefs;
    const value = prefs.get(def.id);
    if (def.type === "boolean") {
      const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: !!value });
      box.addEventListener("change", () => prefs.set(def.id, box.checked));
      return box;
    }
    if (def.type === "combo") {
      const select = document.createElement("select");
      def.options.forEach(([v, text], i) => {
        const option = el("option", "", text);
        option.value = String(i);
        if (v === value) option.selected = true;
        select.appendChild(option);
      });
      select.addEventListener("change", () => prefs.set(def.id, def.options[Number(select.value)][0]));
      return select;
    }
    const input = Object.assign(document.createElement("input"), { type: "number", min: def.min, max: def.max, step: def.step, value });
    input.addEventListener("change", () => {
      const n = Number(input.value);
      const error = row.querySelector(".setting-error");
      const bad = input.value.trim() === "" || !Number.isFinite(n) || n < def.min || n > def.max;
      error.textContent = bad ? `${def.label}: enter a number from ${def.min} to ${def.max}` : "";
      error.hidden = !bad;
      if (!bad) prefs.set(def.id, n);
    });
    return input;
  }

  // ---- keyboard shortcuts -------------------------------------------------------------

  keysSection() {
    const section = el("section", "settings-section keybindings");
    section.dataset.section = "Keybindings";
    section.appendChild(el("h3", "", "Keyboard shortcuts"));
    const filter = Object.assign(document.createElement("input"), { type: "search", placeholder: "Filter commands…", className: "kb-filter" });
    filter.setAttribute("aria-label", "Filter commands");
    this.table = el("table", "kb-table");
    filter.addEventListener("input", () => this.renderKeys(filter.value));
    section.append(filter, this.table);
    this.renderKeys("");
    return section;
  }

  renderKeys(query = this.query || "") {
    this.query = query;
    const keys = this.app.keybindings;
    const q = query.trim().toLowerCase();
    this.table.textContent = "";
    const commands = [...keys.commands.values()].sort((a, b) => a.label.localeCompare(b.label));
    for (const command of commands) {
      const combos = keys.combosOf(command.id).map(comboText);
      if (q && !`${command.label} ${command.id} ${combos.join(" ")}`.toLowerCase().includes(q)) continue;
      const tr = this.table.insertRow();
      tr.dataset.command = command.id;
      const name = tr.insertCell();
      name.append(el("div", "kb-label", command.label), el("div", "kb-id", command.id));
      const cell = tr.insertCell();
      cell.className = "kb-keys";
      for (const c of combos) cell.appendChild(el("kbd", "", c));
      if (!combos.length) cell.appendChild(el("span", "kb-none", "none"));
      const actions = tr.insertCell();
      actions.className = "kb-actions";
      const change = el("button", "kb-change small", "Change");
      change.addEventListener("click", () => this.capture(command, change));
      const clear = el("button", "kb-clear small", "Clear");
      clear.disabled = !combos.length;
      clear.addEventListener("click", () => this.save(keys.clear(command.id)));
      const reset = el("button", "kb-reset small", "Reset");
      reset.disabled = keys.isDefault(command.id);
      reset.addEventListener("click", () => this.save(keys.reset(command.id)));
      actions.append(change, clear, reset);
    }
  }

  /** Wait for the next key combination (Escape cancels), then bind it to `command`. */
  capture(command, button) {
    if (this.stopCapture) this.stopCapture();
    button.textContent = "Press keys…";
    button.classList.add("capturing");
    const onKey = (e) => {
      e.preventDefault();
      e.stopPropagation();
      const combo = comboFromEvent(e);
      if (!combo) return; // a modifier alone: wait for the key
      this.stopCapture();
      if (e.key === "Escape" && !combo.ctrl && !combo.alt && !combo.shift) return;
      this.bind(command, combo);
    };
    this.dialog.addEventListener("keydown", onKey, true);
    this.stopCapture = () => {
      this.dialog.removeEventListener("keydown", onKey, true);
      this.stopCapture = null;
      button.textContent = "Change";
      button.classList.remove("capturing");
    };
  }

  async bind(command, combo) {
    const keys = this.app.keybindings;
    const taken = keys.commandFor(combo);
    if (taken && taken !== command.id) {
      const other = keys.commands.get(taken);
      const ok = await confirmDialog({
        title: "Shortcut in use",
        message: `${comboText(combo)} is the shortcut of “${other ? other.label : taken}”. Use it for “${command.label}” instead?`,
        confirmLabel: "Reassign",
        id: "shortcut-conflict",
      });
      if (!ok) return;
    }
    await this.save(keys.assign(command.id, combo));
  }

  async save(lists) {
    await this.app.prefs.setMany({ [NEW_BINDINGS]: lists[NEW_BINDINGS], [UNSET_BINDINGS]: lists[UNSET_BINDINGS] });
    if (this.table && this.table.isConnected) this.renderKeys();
  }
}
