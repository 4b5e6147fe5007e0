// Queueing and execution feedback: send the open workflow as API-format prompts, route the
// server's events (by prompt id) to the tab that queued them, show progress and outputs,
// and apply "control after generate" once a prompt is queued.

import { CONTROL_MODES, toApiPrompt, toDocument } from "./serialize.js";
import { MODE_ALWAYS, newWorkflowId } from "./state.js";

/** Events that can arrive before the POST /prompt answer names their prompt are kept this long. */
const EARLY_EVENTS_KEPT = 20;

export class Execution {
  constructor(app) {
    this.app = app;
    this.promptTabs = new Map(); // prompt id -> {tab, size}
    this.earlyEvents = new Map(); // prompt id -> [[type, data]] received before its tab was known
    this.handlers = {};
    this.running = null;
    this.lastPromptId = undefined;
  }

  tabFor(d) {
    const entry = d && d.prompt_id ? this.promptTabs.get(d.prompt_id) : null;
    return entry ? entry.tab : null;
  }

  /** Listen to the server's events; each one redraws the canvas once handled. */
  bind() {
    this.on("connection", (d) => this.onConnection(d));
    this.on("status", (d) => this.onStatus(d));
    this.on("execution_start", (d) => this.onStart(d));
    this.on("execution_cached", (d) => this.onCached(d));
    this.on("executing", (d) => this.onExecuting(d));
    this.on("progress", (d) => this.onProgress(d));
    this.on("executed", (d) => this.onExecuted(d));
    this.on("preview", (d) => this.onPreview(d));
    this.on("execution_success", (d) => this.onSuccess(d));
    this.on("execution_error", (d) => this.onError(d));
    this.on("execution_interrupted", (d) => this.onInterrupted(d));
  }

  on(type, fn) {
    const handler = (d) => {
      fn(d);
      this.app.renderer.requestRender();
    };
    this.handlers[type] = handler;
    this.app.api.addEventListener(type, (e) => {
      const d = e.detail || {};
      if (d.prompt_id && !this.promptTabs.has(d.prompt_id) && type !== "status") {
        if (!this.earlyEvents.has(d.prompt_id)) this.earlyEvents.set(d.prompt_id, []);
        this.earlyEvents.get(d.prompt_id).push([type, d]);
        while (this.earlyEvents.size > EARLY_EVENTS_KEPT) this.earlyEvents.delete(this.earlyEvents.keys().next().value);
      }
      handler(d);
    });
  }

  onConnection({ connected }) {
    document.getElementById("conn").className = connected ? "ok" : "down";
    document.getElementById("conn").title = connected ? "Connected to the server" : "Reconnecting…";
    if (connected) this.app.queuePanel.refresh();
  }

  onStatus(d) {
    const remaining = d.status && d.status.exec_info ? d.status.exec_info.queue_remaining : null;
    if (remaining !== null && remaining !== undefined) document.getElementById("queue-size").textContent = String(remaining);
    this.app.queuePanel.refreshSoon();
  }

  onStart(d) {
    const tab = this.tabFor(d);
    this.running = d.prompt_id;
    if (!tab) return;
    const rt = tab.runtime;
    rt.promptId = d.prompt_id;
    rt.done = new Set();
    rt.total = this.promptTabs.get(d.prompt_id).size;
    rt.progress = {};
    // a failed run's outline goes when the next one starts; problems of outputs that the
    // server dropped from this prompt (node_errors of an accepted prompt) stay until fixed
    if (!tab.errorView || tab.errorView.kind === "exec") this.app.errorPanel.clear(tab);
    this.updateProgress(rt);
    this.app.queuePanel.refreshSoon();
  }

  onCached(d) {
    const tab = this.tabFor(d);
    if (!tab) return;
    for (const n of d.nodes || []) tab.runtime.done.add(String(n));
    this.updateProgress(tab.runtime);
  }

  onExecuting(d) {
    const tab = this.tabFor(d);
    if (!tab) return;
    const rt = tab.runtime;
    if (rt.executing != null) rt.done.add(String(rt.executing));
    if (d.node == null) {
      rt.executing = null;
      rt.progress = {};
    } else rt.executing = d.display_node || d.node;
    this.updateProgress(rt);
  }

  onProgress(d) {
    const tab = this.tabFor(d);
    if (!tab) return;
    tab.runtime.progress[d.node] = { value: d.value, max: d.max };
    tab.runtime.progressCount = (tab.runtime.progressCount || 0) + 1;
    if (d.node) tab.runtime.executing = d.node;
    this.updateProgress(tab.runtime);
  }

  onExecuted(d) {
    const tab = this.tabFor(d);
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
  }

  /** A binary preview frame: it names no prompt, so it belongs to the running one. */
  onPreview(d) {
    const tab = this.running ? (this.promptTabs.get(this.running) || {}).tab : null;
    if (!tab || !d.node) return;
    const prev = tab.runtime.previews[d.node];
    if (prev) URL.revokeObjectURL(prev);
    tab.runtime.previews[d.node] = URL.createObjectURL(d.blob);
    tab.runtime.previewCount = (tab.runtime.previewCount || 0) + 1;
  }

  onSuccess(d) {
    const tab = this.tabFor(d);
    if (tab) {
      tab.runtime.executing = null;
      this.clearPreviews(tab.runtime);
      tab.runtime.done = new Set();
      tab.runtime.total = 0;
      this.updateProgress(tab.runtime);
    }
    this.app.queuePanel.refreshSoon();
  }

  onError(d) {
    const tab = this.tabFor(d);
    if (tab) {
      this.endRun(tab.runtime);
      this.app.errorPanel.showExecutionError(tab, d);
    } else this.app.toast(`${d.node_type} #${d.node_id} failed: ${d.exception_message}`, "error");
    this.app.queuePanel.refreshSoon();
  }

  onInterrupted(d) {
    const tab = this.tabFor(d);
    if (tab) this.endRun(tab.runtime);
    this.app.toast("Run interrupted", "info", 2000);
    this.app.queuePanel.refreshSoon();
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
    if (rt !== this.app.runtime) return;
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

  /** Queue the open workflow "Batch" times; validation errors stop the batch and show. */
  async queue(front = false) {
    const app = this.app;
    app.closeEditors();
    const tab = app.tab;
    const count = Math.max(1, Math.min(100, parseInt(document.getElementById("batch-count").value, 10) || 1));
    tab.runtime.errors = {};
    app.errorPanel.hide();
    for (let i = 0; i < count; i++) {
      const prompt = toApiPrompt(tab.graph, app.defs);
      if (!Object.keys(prompt).length) {
        app.toast("Nothing to run: the workflow has no nodes that execute.", "warn");
        return;
      }
      if (!(await this.queueOne(tab, prompt, front))) return;
      this.applyControlAfterGenerate(tab);
    }
    app.queuePanel.refresh();
    app.renderer.requestRender();
  }

  /** POST one prompt; false when the server refused it (the errors are shown). */
  async queueOne(tab, prompt, front) {
    const app = this.app;
    const promptId = newWorkflowId();
    this.promptTabs.set(promptId, { tab, size: Object.keys(prompt).length });
    try {
      const res = await app.api.queuePrompt(prompt, this.pngInfo(tab), front, promptId);
      if (res.prompt_id !== promptId) this.promptTabs.set(res.prompt_id, { tab, size: Object.keys(prompt).length });
      const early = this.earlyEvents.get(res.prompt_id);
      if (early) {
        this.earlyEvents.delete(res.prompt_id);
        for (const [type, d] of early) this.handlers[type](d);
      }
      if (res.node_errors && Object.keys(res.node_errors).length) app.errorPanel.showNodeErrors(tab, res.node_errors, null);
      this.lastPromptId = res.prompt_id;
      return true;
    } catch (e) {
      this.promptTabs.delete(promptId);
      const body = e.body || {};
      if (body.node_errors && Object.keys(body.node_errors).length) app.errorPanel.showNodeErrors(tab, body.node_errors, body.error);
      else app.toast(`Queue failed: ${e.message}`, "error");
      app.renderer.requestRender();
      return false;
    }
  }

  /** What saved images carry: the workflow in ComfyUI's format (so ComfyUI opens Weft's
   * PNGs too) and, for an exact round trip here, Weft's own document. */
  pngInfo(tab) {
    return { workflow: this.app.files.comfyWorkflowOf(tab.graph), weft_workflow: toDocument(tab.graph) };
  }

  applyControlAfterGenerate(tab) {
    let changed = false;
    for (const node of tab.graph.nodes) {
      const control = node.properties && node.properties.control;
      if (!control || node.mode !== MODE_ALWAYS) continue;
      for (const [name, mode] of Object.entries(control)) {
        if (!CONTROL_MODES.includes(mode) || mode === "fixed") continue;
        if (node.inputs.some((i) => i.widget === name)) continue; // a link drives it
        node.widgets_values[name] = this.nextValue(node, name, mode);
        changed = true;
      }
    }
    if (changed) {
      this.app.persistSoon();
      this.app.renderer.requestRender();
    }
  }

  /** A widget's value after one generation under its control mode, within its range. */
  nextValue(node, name, mode) {
    const def = this.app.defFor(node);
    const spec = def && def.inputs.find((i) => i.name === name);
    const o = (spec && spec.opts) || {};
    const min = Number.isFinite(o.min) ? o.min : 0;
    const max = Math.min(Number.isFinite(o.max) ? o.max : Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    const v = Number(node.widgets_values[name]) || 0;
    if (mode === "increment") return Math.min(max, v + 1);
    if (mode === "decrement") return Math.max(min, v - 1);
    return Math.floor(min + Math.random() * Math.min(max - min, 2 ** 50));
  }
}
