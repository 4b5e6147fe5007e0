// The editor's entry point: the App (window.weft) holds the node definitions, the selection
// and the command layer, starts the parts that do the work and exposes one API for them:
// tabs and persistence (workspace.js), edits (editing.js), queueing and execution events
// (execution.js), files (files.js), the error panel (errors.js) and the chrome (toolbar.js).
// window.weft.state is the open graph.

import { Api } from "./api.js";
import { Editing } from "./editing.js";
import { ErrorPanel } from "./errors.js";
import { Execution } from "./execution.js";
import { Files } from "./files.js";
import { installImages } from "./gallery.js";
import { Interaction } from "./interaction.js";
import { NodeLibrary } from "./library.js";
import { MissingDialog } from "./missing.js";
import { ModelBrowser } from "./models.js";
import { TITLE_H, inputImageRef, inputPos, outputPos, typeColor } from "./layout.js";
import { QueuePanel } from "./queue.js";
import { Renderer } from "./render.js";
import { installUserFeatures } from "./settings.js";
import { SearchMenu } from "./search.js";
import { toApiPrompt, toDocument } from "./serialize.js";
import { getNode, linksFrom, normalizeDef, touch } from "./state.js";
import { nodeDef } from "./dynamic.js";
import { Toolbar } from "./toolbar.js";
import { Workspace } from "./workspace.js";
import { VIRTUAL_DEFS, primitiveDef } from "./defaults.js";

class App {
  constructor(config) {
    this.config = config;
    this.api = new Api(config.base_path || "");
    this.defs = {};
    this.selection = new Set();
    this.selectedGroup = null;
    this.settings = { trackpadPan: false, batchCount: 1 };
    this.editorClosers = new Set();
    this.typeColor = typeColor;
    this.workspace = new Workspace(this);
    this.editing = new Editing(this);
    this.execution = new Execution(this);
    this.files = new Files(this);
    this.errorPanel = new ErrorPanel(this);
    this.toolbar = new Toolbar(this);
  }

  // ---- accessors used by tests and modules -------------------------------------------

  get tabs() {
    return this.workspace.tabs;
  }

  get active() {
    return this.workspace.active;
  }

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

  /** The id of the prompt queued last (tests wait for its history). */
  get lastPromptId() {
    return this.execution.lastPromptId;
  }

  /** A node's definition; for ComfyUI's dynamic inputs, the inputs this node has (dynamic.js). */
  defFor(node) {
    if (node.type === "PrimitiveNode") return primitiveDef(node);
    return nodeDef(node, this.defs) || VIRTUAL_DEFS[node.type] || null;
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
    this.library = new NodeLibrary(this, document.getElementById("node-library"), document.getElementById("library-toggle"));
    this.models = new ModelBrowser(this, document.getElementById("model-browser"), document.getElementById("models-toggle"));
    this.missingDialog = new MissingDialog(this);
    this.toolbar.bind();
    await installUserFeatures(this); // settings from the server, shortcuts, workflow library, settings dialog
    installImages(this); // the image viewer, the mask editor and the images panel
    this.files.bindDrop(canvas);
    this.toolbar.bindMinimap();
    this.execution.bind();
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
    this.workspace.restore();
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
    this.errorPanel.reconcile(this.tab); // problems of the inputs just fixed go
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

  /** A short message in the corner; ms = 0 keeps it until clicked. Extensions use it too. */
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

  // ---- the parts' commands, one API for the keyboard, menus, extensions and tests ------

  newTab(graph = null, name = "Unsaved workflow", fileName = null) { return this.workspace.newTab(graph, name, fileName); }
  switchTab(i) { this.workspace.switchTab(i); }
  closeTab(i) { this.workspace.closeTab(i); }
  renderTabs() { this.workspace.renderTabs(); }
  persistSoon() { this.workspace.persistSoon(); }
  persistNow() { this.workspace.persistNow(); }
  loadGraph(graph, name, fileName = null) { this.workspace.loadGraph(graph, name, fileName); }

  addNode(type, pos) { return this.editing.addNode(type, pos); }
  addNodeByType(type, pos) { return this.editing.addNode(type, pos); }
  addNodeRaw(def, pos) { return this.editing.addNodeRaw(def, pos); }
  openSearch(clientX, clientY, worldPos) { this.editing.openSearch(clientX, clientY, worldPos); }
  deleteSelection() { this.editing.deleteSelection(); }
  toggleMode(mode) { this.editing.toggleMode(mode); }
  copy() { return this.editing.copy(); }
  paste(pos, keepInputs = false) { return this.editing.paste(pos, keepInputs); }
  duplicate() { return this.editing.duplicateSelection([40, 40]); }
  duplicateSelection(offset, withLabel = true) { return this.editing.duplicateSelection(offset, withLabel); }
  addGroup(pos, bounding = null) { this.editing.addGroup(pos, bounding); }
  groupSelection() { this.editing.groupSelection(); }
  fitGroup(g) { this.editing.fitGroup(g); }
  insertReroute(link, point) { this.editing.insertReroute(link, point); }
  fitView() { this.editing.fitView(); }
  focusNode(id, select = true) { this.editing.focusNode(id, select); }

  queue(front = false) { return this.execution.queue(front); }

  openFile() { this.files.openFile(); }
  loadFile(file) { return this.files.loadFile(file); }
  saveFile() { this.files.saveFile(); }
  exportApi() { this.files.exportApi(); }
  exportComfy() { this.files.exportComfy(); }
  pickAndUpload(node, widgetName) { this.files.pickAndUpload(node, widgetName); }
  uploadTo(node, widgetName, file) { return this.files.uploadTo(node, widgetName, file); }

  updateToolbar() { this.toolbar.update(); }
  showShortcuts() { this.toolbar.showShortcuts(); }

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
    return wd ? this.interaction.widgets.widgetScreenRect(node, wd) : null;
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
    return this.files.comfyWorkflowOf(this.graph);
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
