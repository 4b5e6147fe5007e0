// The open workflows: one tab per document, each with its own undo history and run state,
// kept in localStorage so a reload (or a crash) loses nothing, and the tab bar that shows them.

import { History } from "./history.js";
import { settleHooks } from "./dynamic.js";
import { fromAnyDocument, toDocument } from "./serialize.js";
import { emptyGraph, touch } from "./state.js";
import { defaultGraph } from "./defaults.js";

const STORE_KEY = "weft.workspace.v1";

/** What the server reported for one tab's latest run. */
function newRuntime() {
  return { executing: null, progress: {}, outputs: {}, previews: {}, errors: {}, done: new Set(), total: 0, promptId: null };
}

/** A graph without a view of its own (none saved, or the untouched default one). */
function unplaced(graph) {
  const ds = graph.extra.ds;
  return !ds || !ds.scale || (ds.scale === 1 && ds.offset[0] === 0 && ds.offset[1] === 0);
}

export class Workspace {
  constructor(app) {
    this.app = app;
    this.tabs = [];
    this.active = 0;
    this.persistTimer = null;
  }

  makeTab(graph, name, fileName = null) {
    const app = this.app;
    const tab = { id: Math.random().toString(36).slice(2, 10), name, fileName, graph, runtime: newRuntime(), modified: false };
    tab.history = new History(() => tab.graph, (g) => {
      tab.graph = g;
      touch(g);
      const ids = new Set(g.nodes.map((n) => n.id));
      app.selection = new Set([...app.selection].filter((id) => ids.has(id)));
    }, () => {}, settleHooks(() => app.defs));
    return tab;
  }

  /** Reopen the tabs of the last session; a first visit gets the default workflow. */
  restore() {
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
    } catch {
      saved = null;
    }
    if (saved && Array.isArray(saved.tabs) && saved.tabs.length) {
      for (const t of saved.tabs) {
        try {
          const tab = this.makeTab(fromAnyDocument(t.doc, this.app.defs), t.name || "Workflow", t.fileName || null);
          tab.modified = !!t.modified;
          if (typeof t.path === "string") Object.assign(tab, { path: t.path, format: t.format || "ui" }); // saved in workflows/ (workflows.js)
          this.tabs.push(tab);
        } catch (e) {
          console.warn("could not restore a tab", e);
        }
      }
      this.active = Math.min(Math.max(0, saved.active | 0), this.tabs.length - 1);
    }
    if (!this.tabs.length) {
      this.tabs.push(this.makeTab(defaultGraph(this.app.defs), "Unsaved workflow"));
      if (unplaced(this.tabs[0].graph)) this.app.fitView(); // the window it opens in, whatever its size
    }
  }

  persistSoon() {
    clearTimeout(this.persistTimer);
    this.persistTimer = setTimeout(() => this.persistNow(), 250);
  }

  persistNow() {
    clearTimeout(this.persistTimer);
    if (!this.tabs.length) return;
    const data = {
      active: this.active,
      tabs: this.tabs.map((t) => ({ name: t.name, fileName: t.fileName, path: t.path || null, format: t.format || null, modified: t.modified, doc: toDocument(t.graph) })),
    };
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(data));
    } catch (e) {
      this.app.toast(`Could not keep the workflow in local storage: ${e.message}`, "warn");
    }
  }

  newTab(graph = null, name = "Unsaved workflow", fileName = null) {
    this.app.closeEditors();
    if (this.tabs.some((t) => t.name === name)) {
      let i = 2;
      while (this.tabs.some((t) => t.name === `${name} ${i}`)) i++;
      name = `${name} ${i}`;
    }
    const tab = this.makeTab(graph || emptyGraph(), name, fileName);
    this.tabs.push(tab);
    this.switchTab(this.tabs.length - 1);
    return tab;
  }

  switchTab(i) {
    const app = this.app;
    app.closeEditors();
    this.active = i;
    app.selection = new Set();
    app.selectedGroup = null;
    // what floats over the canvas belongs to the tab it was opened in
    if (app.interaction) app.interaction.hideTooltip();
    app.errorPanel.showFor(this.tabs[i]);
    this.renderTabs();
    app.updateToolbar();
    app.renderer.requestRender();
    this.persistSoon();
  }

  closeTab(i) {
    const tab = this.tabs[i];
    if (tab.modified && tab.graph.nodes.length && !confirm(`Close "${tab.name}"? Its changes since the last save will be lost.`)) return;
    this.tabs.splice(i, 1);
    if (!this.tabs.length) this.tabs.push(this.makeTab(emptyGraph(), "Unsaved workflow"));
    this.switchTab(Math.min(i, this.tabs.length - 1));
  }

  renderTabs() {
    const bar = document.getElementById("tabs");
    bar.textContent = "";
    this.tabs.forEach((tab, i) => bar.appendChild(this.tabElement(tab, i)));
    const add = document.createElement("button");
    add.className = "tab-add";
    add.id = "tab-add";
    add.textContent = "+";
    add.title = "New workflow";
    add.addEventListener("click", () => this.newTab());
    bar.appendChild(add);
  }

  tabElement(tab, i) {
    const el = document.createElement("div");
    el.className = "tab" + (i === this.active ? " active" : "");
    el.dataset.index = String(i);
    const label = document.createElement("span");
    label.className = "tab-name";
    label.textContent = (tab.modified ? "• " : "") + tab.name;
    label.title = tab.fileName || tab.name;
    const close = document.createElement("button");
    close.className = "tab-close";
    close.textContent = "×";
    close.title = "Close tab";
    close.addEventListener("click", (e) => {
      e.stopPropagation();
      this.closeTab(i);
    });
    el.append(label, close);
    el.addEventListener("click", () => this.switchTab(i));
    el.addEventListener("dblclick", () => {
      const v = prompt("Workflow name", tab.name);
      if (v) {
        tab.name = v;
        this.renderTabs();
        this.persistSoon();
      }
    });
    return el;
  }

  /** Open a graph: in the current tab when that is blank and untouched, else in a new one. */
  loadGraph(graph, name, fileName = null) {
    const app = this.app;
    for (const node of graph.nodes) app.nodeCreated(node);
    const tab = app.tab;
    const blank = tab && !tab.graph.nodes.length && !tab.history.undoStack.length;
    if (blank) {
      tab.graph = graph;
      tab.name = name;
      tab.fileName = fileName;
      tab.runtime = newRuntime();
      tab.errorView = null;
      this.switchTab(this.active);
    } else this.newTab(graph, name, fileName);
    // missing model files, input files and node types: marked on the nodes and listed at once
    if (app.missingDialog) app.missingDialog.check(graph);
    if (unplaced(graph)) app.fitView();
    this.persistNow();
  }
}
