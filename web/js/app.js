// The editor: tabs of workflows, the command layer, queueing and execution feedback,
// files, persistence. window.weft exposes the app; window.weft.state is the open graph.

import { Api } from "./api.js";
import { History } from "./history.js";
import { Interaction } from "./interaction.js";
import { closeMenus, showMenu } from "./menu.js";
import { QueuePanel } from "./queue.js";
import { Renderer, TITLE_H, inputImageRef, inputPos, outputPos, typeColor } from "./render.js";
import { SearchMenu } from "./search.js";
import {
  CONTROL_MODES, fromAnyDocument, graphFromPng, toApiPrompt, toComfyWorkflow, toDocument,
} from "./serialize.js";
import {
  MODE_ALWAYS, clone, connect, createNode, emptyGraph, getNode, graphBounds, linksFrom, newWorkflowId, normalizeDef,
  removeNode, touch,
} from "./state.js";
import { VIRTUAL_DEFS, defaultGraph, primitiveDef } from "./defaults.js";

const STORE_KEY = "weft.workspace.v1";

function newRuntime() {
  return { executing: null, progress: {}, outputs: {}, previews: {}, errors: {}, done: new Set(), total: 0, promptId: null };
}

class App {
  constructor(config) {
    this.config = config;
    this.api = new Api(config.base_path || "");
    this.defs = {};
    this.tabs = [];
    this.active = 0;
    this.selection = new Set();
    this.selectedGroup = null;
    this.settings = { trackpadPan: false, batchCount: 1 };
    this.promptTabs = new Map();
    this.editorClosers = new Set();
    this.typeColor = typeColor;
    this.persistTimer = null;
  }

  // ---- accessors used by tests and modules -------------------------------------------

  get tab() {
    return this.tabs[this.active];
  }

  get graph() {
    return this.tab.graph;
  }

  get state() {
    return this.tab.graph;
  }

  get history() {
    return this.tab.history;
  }

  get runtime() {
    return this.tab.runtime;
  }

  defFor(node) {
    if (node.type === "PrimitiveNode") return primitiveDef(node);
    return this.defs[node.type] || VIRTUAL_DEFS[node.type] || null;
  }

  hasOutputLinks(nodeId, slot) {
    return linksFrom(this.graph, nodeId, slot).length > 0;
  }

  // ---- start-up ----------------------------------------------------------------------

  async start() {
    const canvas = document.getElementById("canvas");
    this.renderer = new Renderer(this, canvas, document.getElementById("minimap"));
    this.search = new SearchMenu(document.body, () => ({ ...this.defs, ...VIRTUAL_DEFS }));
    this.queuePanel = new QueuePanel(this, document.getElementById("queue-panel"));
    this.bindToolbar();
    this.bindDrop(canvas);
    this.bindMinimap();
    this.bindApiEvents();
    // plugins' web extensions (docs/plugins.md): the host first, so window.weft.extensions exists
    const base = this.api.base;
    try {
      const mod = await import(`${base}/weft/extension-host.js`);
      this.extHost = mod.installExtensionHost(this, { base });
    } catch (e) {
      this.extHost = null;
      console.warn("web extensions unavailable:", e);
    }
    let info = {};
    try {
      info = await this.api.objectInfo();
    } catch (e) {
      this.toast(`Could not load the node list from the server: ${e.message}`, "error", 0);
    }
    if (this.extHost) {
      await this.extHost.loadAll();
      for (const def of Object.values(info)) this.extHost.beforeRegisterNodeDef(def);
    }
    this.setDefs(info);
    this.restoreWorkspace();
    this.interaction = new Interaction(this, canvas);
    if (this.extHost) {
      await this.extHost.setup();
      for (const tab of this.tabs) for (const node of tab.graph.nodes) this.nodeCreated(node);
      this.api.onAny = (type, data) => this.extHost.emit(type, data);
    }
    this.renderTabs();
    this.updateToolbar();
    this.api.connect();
    this.renderer.requestRender();
    this.ready = true;
    document.body.dataset.ready = "true";
    window.addEventListener("pagehide", () => this.persistNow());
    window.addEventListener("beforeunload", () => this.persistNow());
  }

  setDefs(info) {
    this.defs = {};
    for (const [name, entry] of Object.entries(info || {})) {
      try {
        this.defs[name] = normalizeDef(name, entry);
      } catch (e) {
        console.warn("bad node definition", name, e);
      }
    }
  }

  async refreshDefs() {
    const info = await this.api.objectInfo();
    if (this.extHost) for (const def of Object.values(info)) this.extHost.beforeRegisterNodeDef(def);
    this.setDefs(info);
    this.widgetFactories = null;
    this.renderer.requestRender();
  }

  // ---- tabs & persistence ------------------------------------------------------------

  makeTab(graph, name, fileName = null) {
    const tab = { id: Math.random().toString(36).slice(2, 10), name, fileName, graph, runtime: newRuntime(), modified: false };
    tab.history = new History(() => tab.graph, (g) => {
      tab.graph = g;
      touch(g);
      const ids = new Set(g.nodes.map((n) => n.id));
      this.selection = new Set([...this.selection].filter((id) => ids.has(id)));
    }, () => {});
    return tab;
  }

  restoreWorkspace() {
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
    } catch {
      saved = null;
    }
    if (saved && Array.isArray(saved.tabs) && saved.tabs.length) {
      for (const t of saved.tabs) {
        try {
          const tab = this.makeTab(fromAnyDocument(t.doc, this.defs), t.name || "Workflow", t.fileName || null);
          tab.modified = !!t.modified;
          this.tabs.push(tab);
        } catch (e) {
          console.warn("could not restore a tab", e);
        }
      }
      this.active = Math.min(Math.max(0, saved.active | 0), this.tabs.length - 1);
    }
    if (!this.tabs.length) this.tabs.push(this.makeTab(defaultGraph(this.defs), "Unsaved workflow"));
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
      tabs: this.tabs.map((t) => ({ name: t.name, fileName: t.fileName, modified: t.modified, doc: toDocument(t.graph) })),
    };
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(data));
    } catch (e) {
      this.toast(`Could not keep the workflow in local storage: ${e.message}`, "warn");
    }
  }

  newTab(graph = null, name = "Unsaved workflow", fileName = null) {
    this.closeEditors();
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
    this.closeEditors();
    this.active = i;
    this.selection = new Set();
    this.selectedGroup = null;
    this.renderTabs();
    this.updateToolbar();
    this.renderer.requestRender();
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
    this.tabs.forEach((tab, i) => {
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
      bar.appendChild(el);
    });
    const add = document.createElement("button");
    add.className = "tab-add";
    add.id = "tab-add";
    add.textContent = "+";
    add.title = "New workflow";
    add.addEventListener("click", () => this.newTab());
    bar.appendChild(add);
  }

  // ---- command layer -----------------------------------------------------------------

  /** Run an edit as one undoable command. */
  cmd(label, fn) {
    const result = this.history.run(label, () => {
      const r = fn();
      touch(this.graph);
      return r;
    });
    this.changed();
    return result;
  }

  changed() {
    touch(this.graph);
    if (this.history.undoStack.length && !this.tab.modified) {
      this.tab.modified = true;
      this.renderTabs();
    }
    this.renderer.requestRender();
    this.updateToolbar();
    this.persistSoon();
  }

  viewChanged() {
    this.renderer.requestRender();
    this.persistSoon();
  }

  undo() {
    this.closeEditors();
    const label = this.history.undo();
    if (label) this.toast(`Undo: ${label}`, "info", 1200);
    this.changed();
  }

  redo() {
    this.closeEditors();
    const label = this.history.redo();
    if (label) this.toast(`Redo: ${label}`, "info", 1200);
    this.changed();
  }

  closeEditors() {
    const closers = [...this.editorClosers];
    this.editorClosers.clear();
    for (const c of closers) c();
  }

  setSelection(ids) {
    this.selection = new Set(ids);
    this.renderer.requestRender();
  }

  addNodeRaw(def, pos) {
    const node = createNode(this.graph, def, pos, this.defs);
    if (def.name === "Note") node.size = [260, 0];
    this.nodeCreated(node);
    return node;
  }

  /** Tell web extensions about a node added to the graph (new, pasted or loaded). */
  nodeCreated(node) {
    if (this.extHost) this.extHost.nodeCreated(node);
  }

  /** The web-extension widget factory for an input, or null. */
  customWidget(spec) {
    if (!this.extHost || !spec.widget) return null;
    const key = `${spec.type}|${spec.opts && spec.opts.widget}`;
    this.widgetFactories = this.widgetFactories || new Map();
    if (!this.widgetFactories.has(key)) this.widgetFactories.set(key, this.extHost.widgetFor(spec.type, spec.opts || {}));
    return this.widgetFactories.get(key);
  }

  addNode(type, pos) {
    const def = this.defs[type] || VIRTUAL_DEFS[type];
    if (!def) throw new Error(`unknown node type ${type}`);
    const node = this.cmd(`Add ${def.display_name}`, () => this.addNodeRaw(def, pos));
    this.setSelection([node.id]);
    return node;
  }

  addNodeByType(type, pos) {
    return this.addNode(type, pos);
  }

  openSearch(clientX, clientY, worldPos) {
    this.search.onCancel = null;
    this.search.open(clientX, clientY, {
      onPick: (def) => this.addNode(def.name, worldPos),
    });
  }

  deleteSelection() {
    const g = this.selectedGroup;
    if (!this.selection.size && !g) return;
    this.cmd("Delete", () => {
      for (const id of this.selection) removeNode(this.graph, id);
      if (g && !this.selection.size) this.graph.groups.splice(this.graph.groups.indexOf(g), 1);
    });
    this.selection = new Set();
    this.selectedGroup = null;
    this.renderer.requestRender();
  }

  toggleMode(mode) {
    const nodes = [...this.selection].map((id) => getNode(this.graph, id)).filter(Boolean);
    if (!nodes.length) return;
    const allSet = nodes.every((n) => n.mode === mode);
    this.cmd(mode === 4 ? "Bypass" : "Mute", () => {
      for (const n of nodes) n.mode = allSet ? MODE_ALWAYS : mode;
    });
  }

  copy() {
    const ids = new Set(this.selection);
    if (!ids.size) return false;
    const nodes = this.graph.nodes.filter((n) => ids.has(n.id)).map(clone);
    const links = this.graph.links.filter((l) => ids.has(l.target_id)).map(clone);
    this.clipboard = { nodes, links };
    try {
      localStorage.setItem("weft.clipboard", JSON.stringify(this.clipboard));
    } catch {
      /* clipboard stays in memory */
    }
    return true;
  }

  paste(pos, keepInputs = false) {
    let clip = this.clipboard;
    try {
      clip = JSON.parse(localStorage.getItem("weft.clipboard") || "null") || clip;
    } catch {
      /* use memory */
    }
    if (!clip || !clip.nodes.length) return [];
    return this.insertNodes(clip, pos, keepInputs, "Paste");
  }

  insertNodes(clip, pos, keepInputs, label) {
    const created = [];
    const run = () => {
      const graph = this.graph;
      const x0 = Math.min(...clip.nodes.map((n) => n.pos[0]));
      const y0 = Math.min(...clip.nodes.map((n) => n.pos[1]));
      const idMap = new Map();
      for (const src of clip.nodes) {
        const n = clone(src);
        n.id = ++graph.last_node_id;
        n.pos = pos ? [Math.round(pos[0] + n.pos[0] - x0), Math.round(pos[1] + n.pos[1] - y0 + TITLE_H)] : [n.pos[0] + 30, n.pos[1] + 30];
        idMap.set(src.id, n.id);
        graph.nodes.push(n);
        created.push(n.id);
        this.nodeCreated(n);
      }
      touch(graph);
      for (const l of clip.links) {
        const target = idMap.get(l.target_id);
        const origin = idMap.has(l.origin_id) ? idMap.get(l.origin_id) : keepInputs && getNode(graph, l.origin_id) ? l.origin_id : null;
        if (target == null || origin == null) continue;
        connect(graph, origin, l.origin_slot, target, l.target_slot);
      }
    };
    if (label) this.cmd(label, run);
    else run();
    this.setSelection(created);
    return created;
  }

  duplicateSelection(offset, withLabel = true) {
    const ids = new Set(this.selection);
    const nodes = this.graph.nodes.filter((n) => ids.has(n.id)).map(clone);
    const links = this.graph.links.filter((l) => ids.has(l.target_id) && ids.has(l.origin_id)).map(clone);
    if (!nodes.length) return [];
    const x0 = Math.min(...nodes.map((n) => n.pos[0]));
    const y0 = Math.min(...nodes.map((n) => n.pos[1]));
    return this.insertNodes({ nodes, links }, [x0 + offset[0], y0 + offset[1] - TITLE_H], false, withLabel ? "Duplicate" : null);
  }

  duplicate() {
    return this.duplicateSelection([40, 40]);
  }

  addGroup(pos, bounding = null) {
    this.cmd("Add group", () => {
      this.graph.groups.push({ title: "Group", bounding: bounding || [Math.round(pos[0]), Math.round(pos[1]), 400, 300], color: "#3f789e" });
    });
  }

  groupSelection() {
    const nodes = [...this.selection].map((id) => getNode(this.graph, id)).filter(Boolean);
    if (!nodes.length) return;
    this.addGroup(null, this.boundsOf(nodes, 20));
  }

  boundsOf(nodes, pad) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of nodes) {
      const lay = this.renderer.layout(n);
      x0 = Math.min(x0, n.pos[0]);
      y0 = Math.min(y0, n.pos[1] - TITLE_H);
      x1 = Math.max(x1, n.pos[0] + lay.w);
      y1 = Math.max(y1, n.pos[1] + lay.h);
    }
    return [Math.round(x0 - pad), Math.round(y0 - pad - 36), Math.round(x1 - x0 + 2 * pad), Math.round(y1 - y0 + 2 * pad + 36)];
  }

  fitGroup(g) {
    const [gx, gy, gw, gh] = g.bounding;
    const inside = this.graph.nodes.filter((n) => n.pos[0] < gx + gw && n.pos[0] + n.size[0] > gx && n.pos[1] < gy + gh && n.pos[1] > gy);
    if (inside.length) this.cmd("Fit group", () => { g.bounding = this.boundsOf(inside, 20); });
  }

  insertReroute(link, point) {
    this.cmd("Add reroute", () => {
      const graph = this.graph;
      const r = createNode(graph, VIRTUAL_DEFS.Reroute, [point[0] - 37, point[1] - 13], this.defs);
      const { origin_id, origin_slot, target_id, target_slot } = link;
      connect(graph, origin_id, origin_slot, r.id, 0);
      connect(graph, r.id, 0, target_id, target_slot);
    });
  }

  fitView() {
    const graph = this.graph;
    if (!graph.nodes.length) return;
    const [x0, y0, x1, y1] = graphBounds(graph);
    const r = this.renderer;
    const scale = Math.min(1.5, Math.max(0.08, Math.min(r.width / (x1 - x0 + 120), r.height / (y1 - y0 + 120))));
    graph.extra.ds = { scale, offset: [r.width / scale / 2 - (x0 + x1) / 2, r.height / scale / 2 - (y0 + y1) / 2] };
    this.viewChanged();
  }

  // ---- loading -----------------------------------------------------------------------

  loadGraph(graph, name, fileName = null) {
    for (const node of graph.nodes) this.nodeCreated(node);
    const tab = this.tab;
    const blank = tab && !tab.graph.nodes.length && !tab.history.undoStack.length;
    if (blank) {
      tab.graph = graph;
      tab.name = name;
      tab.fileName = fileName;
      tab.runtime = newRuntime();
      this.switchTab(this.active);
    } else this.newTab(graph, name, fileName);
    const missing = graph.extra && graph.extra.missing_types;
    if (missing && missing.length) this.reportMissing(graph, missing);
    if (!graph.extra.ds || !graph.extra.ds.scale || graph.extra.ds.scale === 1 && graph.extra.ds.offset[0] === 0 && graph.extra.ds.offset[1] === 0) this.fitView();
    this.persistNow();
  }

  /** Name the node types (and, where the server knows them, the packs) a workflow lacks. */
  async reportMissing(graph, types) {
    let packs = [];
    try {
      const res = await this.api.fetchJson("/plugins/missing", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ workflow: toDocument(graph) }),
      });
      packs = (res && res.packs ? res.packs : []).map((p) => `${p.name}${p.version ? ` ${p.version}` : ""}${p.installed_status ? ` (${p.installed_status} here)` : ""}`);
    } catch {
      /* the server may not know packs; the types alone still help */
    }
    const needs = packs.length ? ` Install: ${packs.join(", ")}.` : "";
    this.toast(`This workflow uses node types the server does not have: ${types.join(", ")}. They are shown in red and will not run.${needs}`, "warn", 10000);
  }

  async loadFile(file) {
    const name = file.name.replace(/\.(json|png)$/i, "");
    try {
      if (file.type === "image/png" || /\.png$/i.test(file.name)) {
        const graph = await graphFromPng(await file.arrayBuffer(), this.defs);
        this.loadGraph(graph, name);
      } else {
        const graph = fromAnyDocument(await file.text(), this.defs);
        this.loadGraph(graph, name, file.name);
      }
      this.toast(`Opened ${file.name}`, "info", 2000);
    } catch (e) {
      this.toast(`Could not open ${file.name}: ${e.message}`, "error");
    }
  }

  openFile() {
    const input = document.getElementById("file-input");
    input.value = "";
    input.click();
  }

  download(data, filename, type = "application/json") {
    const blob = new Blob([data], { type });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    setTimeout(() => {
      URL.revokeObjectURL(a.href);
      a.remove();
    }, 1000);
  }

  saveFile() {
    let name = this.tab.fileName || `${this.tab.name}.json`;
    if (!/\.json$/i.test(name)) name += ".json";
    this.download(JSON.stringify(toDocument(this.graph), null, 2), name);
    this.tab.modified = false;
    this.tab.fileName = name;
    this.renderTabs();
    this.persistSoon();
  }

  exportComfy() {
    this.download(JSON.stringify(this.comfyWorkflowOf(this.graph), null, 2), `${this.tab.name}.comfyui.json`);
  }

  exportApi() {
    this.download(JSON.stringify(toApiPrompt(this.graph, this.defs), null, 2), `${this.tab.name}.api.json`);
  }

  bindDrop(canvas) {
    const root = document.body;
    root.addEventListener("dragover", (e) => {
      e.preventDefault();
      root.classList.add("dragging");
    });
    root.addEventListener("dragleave", (e) => {
      if (e.target === root || !e.relatedTarget) root.classList.remove("dragging");
    });
    root.addEventListener("drop", async (e) => {
      e.preventDefault();
      root.classList.remove("dragging");
      const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (!file) return;
      // an image dropped on a LoadImage node goes to that node
      const rect = canvas.getBoundingClientRect();
      const [wx, wy] = this.renderer.toWorld(e.clientX - rect.left, e.clientY - rect.top);
      const h = this.interaction.hit(wx, wy);
      if (h && h.node && /^image\//.test(file.type)) {
        const def = this.defFor(h.node);
        const spec = def && def.inputs.find((i) => i.opts && i.opts.image_upload);
        if (spec) {
          await this.uploadTo(h.node, spec.name, file);
          return;
        }
      }
      await this.loadFile(file);
    });
    document.getElementById("file-input").addEventListener("change", (e) => {
      const f = e.target.files[0];
      if (f) this.loadFile(f);
    });
  }

  pickAndUpload(node, widgetName) {
    const input = document.createElement("input");
    input.type = "file";
    input.accept = "image/png,image/jpeg,image/webp,image/gif";
    input.addEventListener("change", () => {
      if (input.files[0]) this.uploadTo(node, widgetName, input.files[0]);
    });
    input.click();
  }

  async uploadTo(node, widgetName, file) {
    const max = this.config.features && this.config.features.max_upload_size;
    if (max && file.size > max) {
      this.toast(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the server accepts up to ${(max / 1048576).toFixed(0)} MB`, "error");
      return;
    }
    try {
      const res = await this.api.uploadImage(file);
      const value = res.subfolder ? `${res.subfolder}/${res.name}` : res.name;
      const def = this.defFor(node);
      const spec = def && def.inputs.find((i) => i.name === widgetName);
      if (spec && spec.choices && !spec.choices.includes(value)) spec.choices.push(value);
      this.renderer.images.delete(this.api.viewUrl(inputImageRef(value)));
      this.cmd(`Upload ${file.name}`, () => {
        node.widgets_values[widgetName] = value;
      });
    } catch (e) {
      this.toast(`Upload failed: ${e.message}`, "error");
    }
  }

  // ---- queueing ----------------------------------------------------------------------

  async queue(front = false) {
    this.closeEditors();
    const tab = this.tab;
    const count = Math.max(1, Math.min(100, parseInt(document.getElementById("batch-count").value, 10) || 1));
    tab.runtime.errors = {};
    this.hideErrors();
    for (let i = 0; i < count; i++) {
      const prompt = toApiPrompt(tab.graph, this.defs);
      if (!Object.keys(prompt).length) {
        this.toast("Nothing to run: the workflow has no nodes that execute.", "warn");
        return;
      }
      const promptId = newWorkflowId();
      this.promptTabs.set(promptId, { tab, size: Object.keys(prompt).length });
      try {
        const res = await this.api.queuePrompt(prompt, this.pngInfo(tab), front, promptId);
        if (res.prompt_id !== promptId) this.promptTabs.set(res.prompt_id, { tab, size: Object.keys(prompt).length });
        const early = this.earlyEvents.get(res.prompt_id);
        if (early) {
          this.earlyEvents.delete(res.prompt_id);
          for (const [type, d] of early) this.eventHandlers[type](d);
        }
        if (res.node_errors && Object.keys(res.node_errors).length) this.showNodeErrors(tab, res.node_errors, null);
        this.lastPromptId = res.prompt_id;
      } catch (e) {
        this.promptTabs.delete(promptId);
        const body = e.body || {};
        if (body.node_errors && Object.keys(body.node_errors).length) this.showNodeErrors(tab, body.node_errors, body.error);
        else this.toast(`Queue failed: ${e.message}`, "error");
        this.renderer.requestRender();
        return;
      }
      this.applyControlAfterGenerate(tab);
    }
    this.queuePanel.refresh();
    this.renderer.requestRender();
  }

  /** What saved images carry: the workflow in ComfyUI's format (so ComfyUI opens Weft's
   * PNGs too) and, for an exact round trip here, Weft's own document. */
  pngInfo(tab) {
    return { workflow: this.comfyWorkflowOf(tab.graph), weft_workflow: toDocument(tab.graph) };
  }

  comfyWorkflowOf(graph) {
    const wf = toComfyWorkflow(graph, this.defs);
    // ComfyUI needs real heights: use the drawn ones
    for (const n of wf.nodes) {
      const node = getNode(graph, n.id);
      if (node) n.size = [node.size[0], Math.round(this.renderer.layout(node).h)];
    }
    return wf;
  }

  applyControlAfterGenerate(tab) {
    let changed = false;
    for (const node of tab.graph.nodes) {
      const control = node.properties && node.properties.control;
      if (!control || node.mode !== MODE_ALWAYS) continue;
      const def = this.defFor(node);
      for (const [name, mode] of Object.entries(control)) {
        if (!CONTROL_MODES.includes(mode) || mode === "fixed") continue;
        if (node.inputs.some((i) => i.widget === name)) continue; // a link drives it
        const spec = def && def.inputs.find((i) => i.name === name);
        const o = (spec && spec.opts) || {};
        const min = Number.isFinite(o.min) ? o.min : 0;
        const max = Math.min(Number.isFinite(o.max) ? o.max : Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
        let v = Number(node.widgets_values[name]) || 0;
        if (mode === "increment") v = Math.min(max, v + 1);
        else if (mode === "decrement") v = Math.max(min, v - 1);
        else v = Math.floor(min + Math.random() * Math.min(max - min, 2 ** 50));
        node.widgets_values[name] = v;
        changed = true;
      }
    }
    if (changed) {
      this.persistSoon();
      this.renderer.requestRender();
    }
  }

  showNodeErrors(tab, nodeErrors, error) {
    const errors = {};
    const lines = [];
    for (const [id, entry] of Object.entries(nodeErrors)) {
      const inputs = {};
      const msgs = [];
      for (const err of entry.errors || []) {
        const input = err.extra_info && err.extra_info.input_name;
        const text = err.details ? `${err.message}: ${err.details}` : err.message;
        if (input) inputs[input] = text;
        msgs.push(input ? `${input}: ${text}` : text);
      }
      errors[id] = { message: msgs.join("\n"), inputs, class_type: entry.class_type };
      const node = getNode(tab.graph, Number(id));
      lines.push({ id, title: node ? node.title || (this.defFor(node) || {}).display_name || node.type : entry.class_type, msgs });
    }
    tab.runtime.errors = errors;
    const panel = document.getElementById("error-panel");
    panel.textContent = "";
    const head = document.createElement("div");
    head.className = "error-head";
    head.textContent = (error && error.message) || "The workflow has problems; nothing was run.";
    const close = document.createElement("button");
    close.textContent = "×";
    close.className = "close";
    close.addEventListener("click", () => this.hideErrors());
    head.appendChild(close);
    panel.appendChild(head);
    for (const l of lines) {
      const item = document.createElement("div");
      item.className = "error-item";
      item.dataset.node = l.id;
      const title = document.createElement("b");
      title.textContent = `#${l.id} ${l.title}`;
      item.appendChild(title);
      for (const m of l.msgs) {
        const p = document.createElement("div");
        p.textContent = m;
        item.appendChild(p);
      }
      item.addEventListener("click", () => this.focusNode(Number(l.id)));
      panel.appendChild(item);
    }
    panel.hidden = false;
    if (lines.length) this.focusNode(Number(lines[0].id), false);
  }

  showExecutionError(tab, d) {
    tab.runtime.errors = { [d.node_id]: { message: d.exception_message, inputs: {} } };
    const panel = document.getElementById("error-panel");
    panel.textContent = "";
    const head = document.createElement("div");
    head.className = "error-head";
    head.textContent = `${d.node_type || "Node"} #${d.node_id} failed`;
    const close = document.createElement("button");
    close.textContent = "×";
    close.className = "close";
    close.addEventListener("click", () => this.hideErrors());
    head.appendChild(close);
    const msg = document.createElement("div");
    msg.className = "error-item exec-error";
    msg.dataset.node = String(d.node_id);
    const type = document.createElement("b");
    type.textContent = d.exception_type || "Error";
    const text = document.createElement("pre");
    text.className = "error-message";
    text.textContent = d.exception_message || "";
    msg.append(type, text);
    msg.addEventListener("click", () => this.focusNode(Number(d.node_id)));
    const details = document.createElement("details");
    details.className = "traceback";
    const summary = document.createElement("summary");
    summary.textContent = "Traceback";
    const pre = document.createElement("pre");
    pre.textContent = (d.traceback || []).join("");
    const copy = document.createElement("button");
    copy.textContent = "Copy";
    copy.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(`${d.exception_type}: ${d.exception_message}\n${pre.textContent}`));
    details.append(summary, pre, copy);
    panel.append(head, msg, details);
    panel.hidden = false;
  }

  hideErrors() {
    document.getElementById("error-panel").hidden = true;
  }

  focusNode(id, select = true) {
    const node = getNode(this.graph, id);
    if (!node) return;
    const r = this.renderer;
    const ds = this.graph.extra.ds;
    const lay = r.layout(node);
    ds.offset = [r.width / ds.scale / 2 - (node.pos[0] + lay.w / 2), r.height / ds.scale / 2 - (node.pos[1] + lay.h / 2)];
    if (select) this.setSelection([id]);
    this.viewChanged();
  }

  bindApiEvents() {
    const api = this.api;
    const tabFor = (d) => {
      const entry = d && d.prompt_id ? this.promptTabs.get(d.prompt_id) : null;
      return entry ? entry.tab : null;
    };
    // events may arrive before the POST /prompt answer names the prompt: keep them until then
    this.earlyEvents = new Map();
    const on = (type, fn) => {
      const handler = (d) => {
        fn(d);
        this.renderer.requestRender();
      };
      this.eventHandlers = this.eventHandlers || {};
      this.eventHandlers[type] = handler;
      api.addEventListener(type, (e) => {
        const d = e.detail || {};
        if (d.prompt_id && !this.promptTabs.has(d.prompt_id) && type !== "status") {
          if (!this.earlyEvents.has(d.prompt_id)) this.earlyEvents.set(d.prompt_id, []);
          this.earlyEvents.get(d.prompt_id).push([type, d]);
          while (this.earlyEvents.size > 20) this.earlyEvents.delete(this.earlyEvents.keys().next().value);
        }
        handler(d);
      });
    };
    on("connection", ({ connected }) => {
      document.getElementById("conn").className = connected ? "ok" : "down";
      document.getElementById("conn").title = connected ? "Connected to the server" : "Reconnecting…";
      if (connected) this.queuePanel.refresh();
    });
    on("status", (d) => {
      const remaining = d.status && d.status.exec_info ? d.status.exec_info.queue_remaining : null;
      if (remaining !== null && remaining !== undefined) document.getElementById("queue-size").textContent = String(remaining);
      this.queuePanel.refreshSoon();
    });
    on("execution_start", (d) => {
      const tab = tabFor(d);
      this.running = d.prompt_id;
      if (!tab) return;
      const rt = tab.runtime;
      rt.promptId = d.prompt_id;
      rt.done = new Set();
      rt.total = this.promptTabs.get(d.prompt_id).size;
      rt.progress = {};
      rt.errors = {};
      this.updateProgress(rt);
      this.queuePanel.refreshSoon();
    });
    on("execution_cached", (d) => {
      const tab = tabFor(d);
      if (!tab) return;
      for (const n of d.nodes || []) tab.runtime.done.add(String(n));
      this.updateProgress(tab.runtime);
    });
    on("executing", (d) => {
      const tab = tabFor(d);
      if (!tab) return;
      const rt = tab.runtime;
      if (rt.executing != null) rt.done.add(String(rt.executing));
      if (d.node == null) {
        rt.executing = null;
        rt.progress = {};
      } else rt.executing = d.display_node || d.node;
      this.updateProgress(rt);
    });
    on("progress", (d) => {
      const tab = tabFor(d);
      if (!tab) return;
      tab.runtime.progress[d.node] = { value: d.value, max: d.max };
      tab.runtime.progressCount = (tab.runtime.progressCount || 0) + 1;
      if (d.node) tab.runtime.executing = d.node;
      this.updateProgress(tab.runtime);
    });
    on("executed", (d) => {
      const tab = tabFor(d);
      if (!tab) return;
      const id = d.display_node || d.node;
      const prev = tab.runtime.previews[id];
      if (prev) URL.revokeObjectURL(prev);
      delete tab.runtime.previews[id];
      if (d.output && d.merge && tab.runtime.outputs[id]) {
        for (const [k, v] of Object.entries(d.output)) tab.runtime.outputs[id][k] = [...(tab.runtime.outputs[id][k] || []), ...v];
      } else tab.runtime.outputs[id] = d.output || {};
      tab.runtime.done.add(String(id));
      this.updateProgress(tab.runtime);
    });
    on("preview", (d) => {
      const tab = this.running ? (this.promptTabs.get(this.running) || {}).tab : null;
      if (!tab || !d.node) return;
      const prev = tab.runtime.previews[d.node];
      if (prev) URL.revokeObjectURL(prev);
      tab.runtime.previews[d.node] = URL.createObjectURL(d.blob);
      tab.runtime.previewCount = (tab.runtime.previewCount || 0) + 1;
    });
    on("execution_success", (d) => {
      const tab = tabFor(d);
      if (tab) {
        tab.runtime.executing = null;
        this.clearPreviews(tab.runtime);
        tab.runtime.done = new Set();
        tab.runtime.total = 0;
        this.updateProgress(tab.runtime);
      }
      this.queuePanel.refreshSoon();
    });
    on("execution_error", (d) => {
      const tab = tabFor(d);
      if (tab) {
        this.endRun(tab.runtime);
        this.showExecutionError(tab, d);
      } else this.toast(`${d.node_type} #${d.node_id} failed: ${d.exception_message}`, "error");
      this.queuePanel.refreshSoon();
    });
    on("execution_interrupted", (d) => {
      const tab = tabFor(d);
      if (tab) this.endRun(tab.runtime);
      this.toast("Run interrupted", "info", 2000);
      this.queuePanel.refreshSoon();
    });
  }

  clearPreviews(rt) {
    for (const url of Object.values(rt.previews)) URL.revokeObjectURL(url);
    rt.previews = {};
  }

  /** A run ended in an error or an interruption: nothing is running, previews go. */
  endRun(rt) {
    rt.executing = null;
    rt.total = 0;
    this.clearPreviews(rt);
    this.updateProgress(rt);
  }

  updateProgress(rt) {
    if (rt !== this.runtime) return;
    const bar = document.getElementById("progress-bar");
    if (!rt.total) {
      bar.style.width = "0";
      bar.parentElement.classList.remove("active");
      return;
    }
    let frac = 0;
    const p = rt.executing != null ? rt.progress[rt.executing] : null;
    if (p && p.max) frac = p.value / p.max;
    const v = Math.min(1, (rt.done.size + frac) / rt.total);
    bar.parentElement.classList.add("active");
    bar.style.width = `${(v * 100).toFixed(1)}%`;
  }

  // ---- chrome ------------------------------------------------------------------------

  bindToolbar() {
    const $ = (id) => document.getElementById(id);
    $("queue-button").addEventListener("click", (e) => this.queue(e.shiftKey));
    $("interrupt-button").addEventListener("click", () => this.api.interrupt().catch((e) => this.toast(e.message, "error")));
    $("undo-button").addEventListener("click", () => this.undo());
    $("redo-button").addEventListener("click", () => this.redo());
    $("queue-toggle").addEventListener("click", () => this.queuePanel.toggle());
    $("minimap-toggle").addEventListener("click", () => {
      const m = $("minimap");
      m.hidden = !m.hidden;
      this.renderer.resize();
      this.renderer.requestRender();
    });
    $("menu-button").addEventListener("click", (e) => {
      const r = e.currentTarget.getBoundingClientRect();
      showMenu(r.left, r.bottom + 4, [
        { label: "New workflow", action: () => this.newTab() },
        { label: "Open…", shortcut: "Ctrl+O", action: () => this.openFile() },
        { label: "Save", shortcut: "Ctrl+S", action: () => this.saveFile() },
        { label: "Export (API format)", action: () => this.exportApi() },
        { label: "Export (ComfyUI format)", action: () => this.exportComfy() },
        { separator: true },
        { label: "Load default workflow", action: () => this.loadGraph(defaultGraph(this.defs), "Default workflow") },
        { label: "Clear workflow", action: () => this.cmd("Clear", () => { this.graph.nodes = []; this.graph.links = []; this.graph.groups = []; }) },
        { label: "Fit view", shortcut: ".", action: () => this.fitView() },
        { label: "Refresh node list", action: () => this.refreshDefs().then(() => this.toast("Node list refreshed", "info", 1500)) },
        ...(this.extHost ? this.extHost.menuItems().map((m) => ({ label: m.label, action: () => m.run() })) : []),
        { separator: true },
        { label: this.settings.trackpadPan ? "Wheel: zoom" : "Wheel: pan (trackpad)", action: () => { this.settings.trackpadPan = !this.settings.trackpadPan; } },
        { label: "Keyboard shortcuts", shortcut: "?", action: () => this.showShortcuts() },
        { label: `Weft ${this.config.version || ""}`, disabled: true },
      ]);
    });
  }

  bindMinimap() {
    const m = document.getElementById("minimap");
    const go = (e) => {
      const t = this.renderer.minimapTransform;
      if (!t) return;
      const rect = m.getBoundingClientRect();
      const wx = (e.clientX - rect.left - t.ox) / t.s;
      const wy = (e.clientY - rect.top - t.oy) / t.s;
      const r = this.renderer;
      const ds = this.graph.extra.ds;
      ds.offset = [r.width / ds.scale / 2 - wx, r.height / ds.scale / 2 - wy];
      this.viewChanged();
    };
    let down = false;
    m.addEventListener("pointerdown", (e) => {
      down = true;
      m.setPointerCapture(e.pointerId);
      go(e);
    });
    m.addEventListener("pointermove", (e) => down && go(e));
    m.addEventListener("pointerup", () => {
      down = false;
    });
  }

  updateToolbar() {
    const $ = (id) => document.getElementById(id);
    $("undo-button").disabled = !this.history.canUndo;
    $("redo-button").disabled = !this.history.canRedo;
  }

  showShortcuts() {
    const rows = [
      ["Double-click, /", "add a node (search)"], ["Drag a link into space", "add a node that fits it"],
      ["Ctrl+Enter", "queue (Shift: to the front)"], ["Ctrl+Z / Ctrl+Y", "undo / redo"],
      ["Ctrl+C / Ctrl+V", "copy / paste (Shift: keep input links)"], ["Ctrl+D, Alt+drag", "duplicate"],
      ["Delete", "remove selected"], ["Ctrl+B / Ctrl+M", "bypass / mute"], ["Ctrl+G", "group selected"],
      ["Ctrl+A", "select all"], ["Ctrl/Shift+drag", "box select"], ["Drag space, Space+drag", "pan"],
      ["Wheel", "zoom"], [".", "fit view"], ["R", "refresh the node list (new model files)"], ["Ctrl+S / Ctrl+O", "save / open"], ["Esc", "close menus, deselect"],
    ];
    let panel = document.getElementById("shortcuts");
    if (!panel) {
      panel = document.createElement("div");
      panel.id = "shortcuts";
      panel.addEventListener("click", () => panel.remove());
      const table = document.createElement("table");
      for (const [k, v] of rows) {
        const tr = table.insertRow();
        tr.insertCell().textContent = k;
        tr.insertCell().textContent = v;
      }
      panel.appendChild(table);
      document.body.appendChild(panel);
    } else panel.remove();
  }

  toast(text, kind = "info", ms = 5000) {
    const box = document.getElementById("toasts");
    const el = document.createElement("div");
    el.className = `toast ${kind}`;
    el.textContent = text;
    el.addEventListener("click", () => el.remove());
    box.appendChild(el);
    while (box.children.length > 5) box.firstChild.remove();
    if (ms) setTimeout(() => el.remove(), ms);
  }

  // ---- helpers for tests and automation ----------------------------------------------

  /** Client (page) coordinates of a node's socket. */
  socketClientPos(nodeId, kind, slot) {
    const node = getNode(this.graph, nodeId);
    const lay = this.renderer.layout(node);
    const [wx, wy] = kind === "input" ? inputPos(node, slot, lay) : outputPos(node, slot, lay);
    const [sx, sy] = this.renderer.toScreen(wx, wy);
    const rect = this.renderer.canvas.getBoundingClientRect();
    return [rect.left + sx, rect.top + sy];
  }

  /** Client rectangle of a node's widget. */
  widgetClientRect(nodeId, name) {
    const node = getNode(this.graph, nodeId);
    const wd = this.renderer.layout(node).widgets.find((w) => w.name === name);
    return wd ? this.interaction.widgetScreenRect(node, wd) : null;
  }

  /** Client position of a node's title bar (for dragging/selecting). */
  titleClientPos(nodeId) {
    const node = getNode(this.graph, nodeId);
    const [sx, sy] = this.renderer.toScreen(node.pos[0] + 60, node.pos[1] - TITLE_H / 2);
    const rect = this.renderer.canvas.getBoundingClientRect();
    return [rect.left + sx, rect.top + sy];
  }

  /** URLs of the images a node shows (run outputs; the picked input image for LoadImage). */
  imageUrls(node) {
    const out = this.runtime.outputs[node.id];
    if (out && out.images && out.images.length) return out.images.map((im) => this.api.viewUrl(im));
    const def = this.defFor(node);
    const spec = def && def.inputs.find((i) => i.opts && i.opts.image_upload);
    if (spec && node.widgets_values[spec.name]) return [this.api.viewUrl(inputImageRef(node.widgets_values[spec.name]))];
    return [];
  }

  apiPrompt() {
    return toApiPrompt(this.graph, this.defs);
  }

  document() {
    return toDocument(this.graph);
  }

  comfyWorkflow() {
    return this.comfyWorkflowOf(this.graph);
  }
}

function readConfig() {
  const el = document.getElementById("weft-config");
  try {
    return JSON.parse(el.textContent);
  } catch {
    return { version: "", base_path: "", features: {} };
  }
}

const app = new App(readConfig());
window.weft = app;
app.start().catch((e) => {
  console.error(e);
  app.toast(`The editor failed to start: ${e.message}`, "error", 0);
});
export { closeMenus };
