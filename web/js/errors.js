// The error panel: every validation problem of a refused prompt (click one to go to its
// node), or the node, exception and traceback of a run that failed. Each tab keeps its own
// (tab.errorView): switching tabs shows that tab's panel or none. An input's problem goes as
// soon as the input changes (a link, a new value, converted), as in ComfyUI; the rest on
// the next run.

import { getNode, linkInto } from "./state.js";

/** What feeds a node's input now: a link, an open socket, a widget's value; "" when gone. */
function inputState(graph, node, name) {
  const slot = node.inputs.findIndex((i) => i.name === name || i.widget === name);
  if (slot >= 0) {
    const link = linkInto(graph, node.id, slot);
    return link ? `link:${link.origin_id}:${link.origin_slot}` : "socket";
  }
  return name in node.widgets_values ? `value:${JSON.stringify(node.widgets_values[name])}` : "";
}

export class ErrorPanel {
  constructor(app) {
    this.app = app;
  }

  get panel() {
    return document.getElementById("error-panel");
  }

  /** Empty the panel and give it a heading with a close button. */
  open(heading) {
    const panel = this.panel;
    panel.textContent = "";
    const head = document.createElement("div");
    head.className = "error-head";
    head.textContent = heading;
    const close = document.createElement("button");
    close.textContent = "×";
    close.className = "close";
    close.addEventListener("click", () => this.hide());
    head.appendChild(close);
    return head;
  }

  /** Close the panel (the open tab's); the outlines stay until fixed or the next run. */
  hide() {
    this.panel.hidden = true;
    if (this.app.tab) this.app.tab.errorView = null;
  }

  /** Show the panel of the tab just opened, or none (tabs.js calls it on every switch). */
  showFor(tab) {
    const view = tab && tab.errorView;
    this.panel.hidden = true;
    if (view && view.kind === "nodes") this.renderNodeErrors(tab, false);
    else if (view && view.kind === "exec") this.renderExecutionError(tab, view.data);
  }

  /** A refused prompt: outline the nodes, mark their inputs, list every problem. */
  showNodeErrors(tab, nodeErrors, error) {
    const seen = {}; // the state of each input named, to notice when the user changes it
    for (const [id, entry] of Object.entries(nodeErrors)) {
      const node = getNode(tab.graph, Number(id));
      seen[id] = {};
      for (const err of entry.errors || []) {
        const input = err.extra_info && err.extra_info.input_name;
        if (input && node) seen[id][input] = inputState(tab.graph, node, input);
      }
    }
    tab.errorView = { kind: "nodes", nodeErrors: JSON.parse(JSON.stringify(nodeErrors)), error, seen };
    this.renderNodeErrors(tab, true);
    if (tab !== this.app.tab) this.app.toast(`"${tab.name}" has problems; nothing was run (its tab lists them)`, "error");
  }

  /** The tab's validation errors as outlines; the list in the panel when it is the open tab. */
  renderNodeErrors(tab, focus) {
    const view = tab.errorView;
    const { errors, lines } = this.collect(tab, view.nodeErrors);
    tab.runtime.errors = errors;
    if (tab !== this.app.tab) return;
    const panel = this.panel;
    panel.appendChild(this.open((view.error && view.error.message) || "The workflow has problems; nothing was run."));
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
      item.addEventListener("click", () => this.app.focusNode(Number(l.id)));
      panel.appendChild(item);
    }
    panel.hidden = false;
    if (focus && lines.length) this.app.focusNode(Number(lines[0].id), false);
  }

  /** After an edit: drop the problems of inputs the user changed and of deleted nodes; the
   * panel and the outlines follow (both go when nothing is left). */
  reconcile(tab) {
    const view = tab.errorView;
    if (!view) return;
    if (view.kind === "exec") {
      if (!getNode(tab.graph, Number(view.data.node_id))) this.clear(tab);
      return;
    }
    let changed = false;
    for (const [id, entry] of Object.entries(view.nodeErrors)) {
      const node = getNode(tab.graph, Number(id));
      const before = entry.errors || [];
      const keep = node ? before.filter((err) => {
        const input = err.extra_info && err.extra_info.input_name;
        return !input || inputState(tab.graph, node, input) === view.seen[id][input];
      }) : [];
      if (keep.length === before.length && node) continue;
      changed = true;
      if (keep.length) entry.errors = keep;
      else delete view.nodeErrors[id];
    }
    if (!changed) return;
    if (Object.keys(view.nodeErrors).length) this.renderNodeErrors(tab, false);
    else this.clear(tab);
  }

  /** No problems left in the tab: no outlines, no panel. */
  clear(tab) {
    tab.errorView = null;
    tab.runtime.errors = {};
    if (tab === this.app.tab) this.panel.hidden = true;
  }

  /** The server's node_errors as the runtime's per-node errors and the panel's lines. */
  collect(tab, nodeErrors) {
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
      lines.push({ id, title: node ? node.title || (this.app.defFor(node) || {}).display_name || node.type : entry.class_type, msgs });
    }
    return { errors, lines };
  }

  /** A run failed in a node: its exception, message and traceback (copyable). */
  showExecutionError(tab, d) {
    tab.errorView = { kind: "exec", data: d };
    this.renderExecutionError(tab, d);
    if (tab !== this.app.tab) this.app.toast(`"${tab.name}": ${d.node_type || "Node"} #${d.node_id} failed: ${d.exception_message}`, "error");
  }

  renderExecutionError(tab, d) {
    tab.runtime.errors = { [d.node_id]: { message: d.exception_message, inputs: {} } };
    if (tab !== this.app.tab) return;
    const panel = this.panel;
    const head = this.open(`${d.node_type || "Node"} #${d.node_id} failed`);
    const msg = document.createElement("div");
    msg.className = "error-item exec-error";
    msg.dataset.node = String(d.node_id);
    const type = document.createElement("b");
    type.textContent = d.exception_type || "Error";
    const text = document.createElement("pre");
    text.className = "error-message";
    text.textContent = d.exception_message || "";
    msg.append(type, text);
    msg.addEventListener("click", () => this.app.focusNode(Number(d.node_id)));
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
}
