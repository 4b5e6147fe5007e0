// The error panel: every validation problem of a refused prompt (click one to go to its
// node), or the node, exception and traceback of a run that failed.

import { getNode } from "./state.js";

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

  hide() {
    this.panel.hidden = true;
  }

  /** A refused prompt: outline the nodes, mark their inputs, list every problem. */
  showNodeErrors(tab, nodeErrors, error) {
    const { errors, lines } = this.collect(tab, nodeErrors);
    tab.runtime.errors = errors;
    const panel = this.panel;
    panel.appendChild(this.open((error && error.message) || "The workflow has problems; nothing was run."));
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
    if (lines.length) this.app.focusNode(Number(lines[0].id), false);
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
    tab.runtime.errors = { [d.node_id]: { message: d.exception_message, inputs: {} } };
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
