// The workflow library (W, or the Workflows button): the workflows saved on the server under
// the user folder's workflows/ (where ComfyUI's front end keeps its own, so both see the same
// files) to open, rename and delete; and the templates: Weft's default workflow and the
// examples that ship with Weft (GET /workflow_templates). Save (Ctrl+S) writes the open
// workflow to workflows/<name>.json in ComfyUI's UI format, or its API-format prompt.

import { defaultGraph } from "./defaults.js";
import { registerDock, setDock } from "./dock.js";
import { askText, confirmDialog, showDialog } from "./overlays.js";
import { fromAnyDocument, toApiPrompt } from "./serialize.js";
import { el } from "./dom.js";

const DIR = "workflows";
const BAD_NAME = /[\\:*?"<>|]/;

/** Why `name` cannot be a workflow's name, or null. Folders ("sub/name") are allowed. */
export function nameProblem(name) {
  if (!name) return "Enter a name.";
  if (name.length > 200) return "The name is too long (200 characters at most).";
  if (BAD_NAME.test(name) || [...name].some((c) => c.charCodeAt(0) < 32)) return 'A name cannot contain \\ : * ? " < > | or control characters.';
  const parts = name.split("/");
  if (parts.some((p) => !p.trim() || p === "." || p === "..")) return "Each part of the name between slashes needs a name (no empty parts, . or ..).";
  return null;
}

const pathOf = (name) => `${DIR}/${name.replace(/\.json$/i, "")}.json`;
const nameOf = (path) => path.replace(/^workflows\//, "").replace(/\.json$/i, "");
const titleOf = (template) => template.replace(/[_-]+/g, " ").replace(/^\w/, (c) => c.toUpperCase());

export class WorkflowLibrary {
  constructor(app, root, button) {
    this.app = app;
    this.el = root;
    this.files = [];
    this.templates = {};
    this.build();
    registerDock(root, button, () => this.refresh());
  }

  get userdata() {
    return this.app.userdata;
  }

  build() {
    const head = el("div", "dock-head");
    const close = el("button", "close", "×");
    close.title = "Close";
    close.addEventListener("click", () => setDock(null));
    head.append(el("h2", "", "Workflows"), close);
    const actions = el("div", "wf-actions");
    const save = el("button", "small wf-save", "Save current…");
    save.addEventListener("click", () => this.save(true));
    const refresh = el("button", "small wf-refresh", "Refresh");
    refresh.addEventListener("click", () => this.refresh());
    actions.append(save, refresh);
    this.filter = Object.assign(document.createElement("input"), { type: "search", placeholder: "Filter workflows…", className: "wf-filter" });
    this.filter.setAttribute("aria-label", "Filter workflows");
    this.filter.addEventListener("input", () => this.render());
    this.list = el("div", "wf-list");
    this.list.setAttribute("aria-label", "Saved workflows");
    this.templateList = el("div", "wf-templates");
    this.templateList.setAttribute("aria-label", "Templates");
    this.el.append(head, actions, this.filter, el("h3", "", "Saved"), this.list, el("h3", "", "Templates"), this.templateList);
  }

  async refresh() {
    try {
      const [files, templates] = await Promise.all([this.userdata.list(DIR), this.userdata.templates().catch(() => ({}))]);
      this.files = files.filter((f) => /\.json$/i.test(f.path)).sort((a, b) => a.path.localeCompare(b.path));
      this.templates = templates || {};
    } catch (e) {
      this.app.toast(`Could not list the saved workflows: ${e.message}`, "error");
    }
    this.render();
  }

  render() {
    const q = this.filter.value.trim().toLowerCase();
    this.list.textContent = "";
    const files = this.files.filter((f) => !q || f.path.toLowerCase().includes(q));
    for (const file of files) this.list.appendChild(this.fileRow(`${DIR}/${file.path}`));
    if (!files.length) this.list.appendChild(el("div", "wf-empty", this.files.length ? "No workflow matches." : "No saved workflows yet: save one with Ctrl+S."));
    this.templateList.textContent = "";
    this.templateList.appendChild(this.templateRow("Default workflow (txt2img)", () => this.openDefault(), "default"));
    for (const [pack, names] of Object.entries(this.templates)) {
      for (const name of names) {
        if (q && !`${pack} ${name}`.toLowerCase().includes(q)) continue;
        const label = pack === "weft" ? titleOf(name) : `${titleOf(name)} (${pack})`;
        this.templateList.appendChild(this.templateRow(label, () => this.openTemplate(pack, name), `${pack}/${name}`));
      }
    }
  }

  fileRow(path) {
    const row = el("div", "wf-row");
    row.dataset.path = path;
    const open = el("button", "wf-open", nameOf(path));
    open.title = `Open ${path}`;
    if (this.app.tabs.some((t) => t.path === path)) row.classList.add("is-open");
    open.addEventListener("click", () => this.open(path));
    const rename = el("button", "icon small wf-rename", "✎");
    rename.title = "Rename";
    rename.setAttribute("aria-label", `Rename ${nameOf(path)}`);
    rename.addEventListener("click", () => this.rename(path));
    const del = el("button", "icon small wf-delete", "✕");
    del.title = "Delete";
    del.setAttribute("aria-label", `Delete ${nameOf(path)}`);
    del.addEventListener("click", () => this.remove(path));
    row.append(open, rename, del);
    return row;
  }

  templateRow(label, onOpen, key) {
    const row = el("div", "wf-row wf-template");
    row.dataset.template = key;
    const open = el("button", "wf-open", label);
    open.addEventListener("click", onOpen);
    row.appendChild(open);
    return row;
  }

  // ---- open, rename, delete -----------------------------------------------------------

  async open(path) {
    const app = this.app;
    const already = app.tabs.findIndex((t) => t.path === path);
    if (already >= 0) {
      app.switchTab(already);
      return;
    }
    try {
      const data = await this.userdata.read(path);
      const graph = fromAnyDocument(data, app.defs);
      app.loadGraph(graph, nameOf(path).split("/").pop());
      this.bindTab(app.tab, path, Array.isArray(data.nodes) || data.format ? "ui" : "api");
    } catch (e) {
      app.toast(`Could not open ${path}: ${e.message}`, "error");
    }
  }

  bindTab(tab, path, format) {
    tab.path = path;
    tab.format = format;
    tab.modified = false;
    this.app.renderTabs();
    this.app.persistSoon();
  }

  async openTemplate(pack, name) {
    try {
      const graph = fromAnyDocument(await this.userdata.template(pack, name), this.app.defs);
      this.app.loadGraph(graph, titleOf(name));
      this.app.tab.path = null; // a template is a new workflow: Save asks for its name
    } catch (e) {
      this.app.toast(`Could not open the template ${name}: ${e.message}`, "error");
    }
  }

  openDefault() {
    this.app.loadGraph(defaultGraph(this.app.defs), "Default workflow");
    this.app.tab.path = null;
  }

  async rename(path) {
    const app = this.app;
    let target = null;
    const name = await askText({
      title: "Rename workflow",
      label: "New name",
      value: nameOf(path),
      confirmLabel: "Rename",
      id: "rename-dialog",
      validate: async (value) => {
        const problem = nameProblem(value);
        if (problem) return problem;
        target = pathOf(value);
        if (target === path) return null;
        try {
          await this.userdata.move(path, target);
          return null;
        } catch (e) {
          return e.status === 409 ? `${target} already exists: choose another name.` : e.message;
        }
      },
    });
    if (!name || target === path) return;
    for (const tab of app.tabs) {
      if (tab.path !== path) continue;
      tab.path = target;
      tab.name = nameOf(target).split("/").pop();
    }
    app.renderTabs();
    app.persistSoon();
    await this.refresh();
  }

  async remove(path) {
    const app = this.app;
    const ok = await confirmDialog({
      title: "Delete workflow",
      message: `Delete “${nameOf(path)}” (${path}) from the server? This cannot be undone.`,
      confirmLabel: "Delete",
      danger: true,
      id: "delete-dialog",
    });
    if (!ok) return;
    try {
      await this.userdata.remove(path);
    } catch (e) {
      if (e.status !== 404) {
        app.toast(`Could not delete ${path}: ${e.message}`, "error");
        return;
      }
    }
    for (const tab of app.tabs) {
      if (tab.path !== path) continue;
      tab.path = null;
      tab.modified = true; // its only copy is now the open tab
    }
    app.renderTabs();
    app.persistSoon();
    app.toast(`Deleted ${path}`, "info", 2000);
    await this.refresh();
  }

  // ---- save ---------------------------------------------------------------------------

  /** Save the open workflow: in place when it came from the library, else ask for a name
   * and a format (always asks with `ask`). */
  async save(ask = false) {
    const tab = this.app.tab;
    if (!ask && tab.path && tab.format === "ui") {
      if (await this.write(tab.path, "ui", true)) this.saved(tab, tab.path, "ui");
      return;
    }
    const choice = await this.askSave(tab);
    if (!choice) return;
    const path = pathOf(choice.name);
    let written = await this.write(path, choice.format, false);
    if (written === "exists") {
      const replace = await confirmDialog({
        title: "Replace workflow?",
        message: `${path} already exists. Replace it?`,
        confirmLabel: "Replace",
        danger: true,
        id: "overwrite-dialog",
      });
      if (!replace) return;
      written = await this.write(path, choice.format, true);
    }
    if (written === true) this.saved(tab, path, choice.format);
  }

  /** true when written, "exists" when it was there and `overwrite` is false, false on error. */
  async write(path, format, overwrite) {
    const app = this.app;
    const data = format === "api" ? toApiPrompt(app.graph, app.defs) : app.comfyWorkflow();
    try {
      await this.userdata.write(path, JSON.stringify(data, null, 2), { overwrite });
      return true;
    } catch (e) {
      if (e.status === 409) return "exists";
      app.toast(`Could not save ${path}: ${e.message}`, "error");
      return false;
    }
  }

  saved(tab, path, format) {
    if (format === "ui") {
      tab.name = nameOf(path).split("/").pop();
      this.bindTab(tab, path, "ui");
    }
    this.app.toast(`Saved ${path}${format === "api" ? " (API format)" : ""}`, "info", 2000);
    if (!this.el.hidden) this.refresh();
  }

  /** The save dialog: a name and the format; resolves {name, format} or null. */
  async askSave(tab) {
    let input = null;
    let api = null;
    const ok = await showDialog({
      title: "Save workflow",
      id: "save-dialog",
      build: (body) => {
        const label = el("label", "weft-field", "Name");
        input = Object.assign(document.createElement("input"), { type: "text", value: tab.path ? nameOf(tab.path) : tab.name, spellcheck: false });
        label.appendChild(input);
        const where = el("div", "setting-help", "Saved on the server in workflows/, where ComfyUI keeps its workflows.");
        const formats = el("fieldset", "wf-format");
        formats.appendChild(el("legend", "", "Format"));
        const radio = (value, text, checked) => {
          const l = el("label", "wf-format-option");
          const r = Object.assign(document.createElement("input"), { type: "radio", name: "wf-format", value, checked });
          l.append(r, document.createTextNode(` ${text}`));
          formats.appendChild(l);
          return r;
        };
        radio("ui", "Workflow (ComfyUI's UI format: opens in ComfyUI and Weft)", true);
        api = radio("api", "API format (the prompt scripts post to /prompt)", false);
        body.append(label, where, formats);
      },
      buttons: [{ label: "Cancel", value: null }, { label: "Save", value: true, primary: true }],
      validate: () => nameProblem(input.value.trim()),
    });
    return ok ? { name: input.value.trim().replace(/\.json$/i, ""), format: api.checked ? "api" : "ui" } : null;
  }
}
