// The queue and history panel: running and pending prompts (cancel, interrupt), finished
// ones with their images, and loading a past run's workflow back.

import { formatDuration, formatStart, historyImages, runSummary, workflowOf } from "./runs.js";
import { fromAnyDocument } from "./serialize.js";

export class QueuePanel {
  constructor(app, el) {
    this.app = app;
    this.el = el;
    this.timer = null;
    this.el.hidden = true;
  }

  toggle() {
    this.el.hidden = !this.el.hidden;
    document.getElementById("queue-toggle").classList.toggle("on", !this.el.hidden);
    document.getElementById("stage").classList.toggle("queue-open", !this.el.hidden);
    if (!this.el.hidden) this.refresh();
  }

  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), 150);
  }

  async refresh() {
    const api = this.app.api;
    let queue, history;
    try {
      [queue, history] = await Promise.all([api.getQueue(), this.el.hidden ? Promise.resolve(null) : api.getHistory(30)]);
    } catch {
      return;
    }
    const running = queue.queue_running || [];
    const pending = (queue.queue_pending || []).slice().sort((a, b) => a[0] - b[0]);
    document.getElementById("queue-size").textContent = String(running.length + pending.length);
    if (this.el.hidden) return;
    this.el.textContent = "";
    const section = (title) => {
      const h = document.createElement("h3");
      h.textContent = title;
      this.el.appendChild(h);
    };
    section(`Running (${running.length})`);
    for (const item of running) this.el.appendChild(this.row(item, "running"));
    section(`Pending (${pending.length})`);
    if (pending.length) {
      const clear = document.createElement("button");
      clear.className = "small";
      clear.textContent = "Clear pending";
      clear.addEventListener("click", async () => {
        await api.clearQueue();
        this.refresh();
      });
      this.el.appendChild(clear);
    }
    for (const item of pending) this.el.appendChild(this.row(item, "pending"));
    const entries = Object.entries(history || {}).reverse();
    section(`History (${entries.length})`);
    if (entries.length) {
      const clear = document.createElement("button");
      clear.className = "small";
      clear.textContent = "Clear history";
      clear.addEventListener("click", async () => {
        await api.deleteHistory(null);
        this.refresh();
      });
      this.el.appendChild(clear);
    }
    for (const [id, entry] of entries) this.el.appendChild(this.historyRow(id, entry));
  }

  row(item, kind) {
    const [number, promptId, prompt] = item;
    const div = document.createElement("div");
    div.className = `queue-item ${kind}`;
    div.dataset.promptId = promptId;
    const label = document.createElement("span");
    label.textContent = `#${number} · ${Object.keys(prompt || {}).length} nodes`;
    div.appendChild(label);
    const btn = document.createElement("button");
    btn.className = "small";
    if (kind === "running") {
      btn.textContent = "Interrupt";
      btn.addEventListener("click", () => this.app.api.interrupt().then(() => this.refreshSoon()));
    } else {
      btn.textContent = "Cancel";
      btn.className = "small cancel";
      btn.addEventListener("click", () => this.app.api.deleteFromQueue([promptId]).then(() => this.refresh()));
    }
    div.appendChild(btn);
    return div;
  }

  historyRow(id, entry) {
    const div = document.createElement("div");
    div.className = "queue-item history";
    div.dataset.promptId = id;
    // success / error / interrupted (ComfyUI marks an interrupted run "error": its messages tell)
    const run = runSummary(entry);
    div.dataset.status = run.state;
    const label = document.createElement("span");
    label.className = `run-status ${run.state === "success" ? "ok" : run.state === "interrupted" ? "interrupted" : "failed"}`;
    const number = Array.isArray(entry.prompt) ? entry.prompt[0] : "";
    label.textContent = `#${number} ${{ success: "done", error: "error", interrupted: "interrupted" }[run.state]}`;
    div.appendChild(label);
    const when = document.createElement("span");
    when.className = "run-time";
    when.textContent = [formatStart(run.start), formatDuration(run.duration)].filter(Boolean).join(" · ");
    if (run.start !== null) when.title = `started ${new Date(run.start).toLocaleString()}${run.duration !== null ? `, took ${formatDuration(run.duration)}` : ""}`;
    div.appendChild(when);
    const images = historyImages({ [id]: entry });
    if (images.length) {
      const thumbs = document.createElement("div");
      thumbs.className = "thumbs";
      images.slice(0, 4).forEach((item) => {
        const img = document.createElement("img");
        img.src = this.app.api.viewUrl(item.ref);
        img.alt = item.ref.filename;
        img.title = `${item.ref.filename} (click to view)`;
        img.addEventListener("click", () => this.app.viewer.openWithHistory(item.ref, images));
        thumbs.appendChild(img);
      });
      div.appendChild(thumbs);
    }
    const wf = workflowOf(entry);
    if (wf) {
      const load = document.createElement("button");
      load.className = "small";
      load.textContent = "Load";
      load.title = "Open the workflow of this run in a new tab";
      load.addEventListener("click", () => {
        try {
          this.app.newTab(fromAnyDocument(wf, this.app.defs), `Run #${number}`);
          this.app.tab.runtime.outputs = entry.outputs || {};
        } catch (e) {
          this.app.toast(e.message, "error");
        }
      });
      div.appendChild(load);
    }
    return div;
  }
}
