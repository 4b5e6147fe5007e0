// The image viewer: one image full size over the editor, opened from a node's image, a
// history thumbnail or the gallery. Zoom (wheel at the pointer, buttons, fit, 1:1), pan by
// dragging, ←/→ through the images (the run's batch, then the next run), ↑/↓ to the
// previous/next run, download, "load this workflow" (the run's, or the PNG's own) and "copy
// seed" (the sampler's seed from the run's prompt). Escape closes it.

import { inputImageRef, uploadWidget } from "./layout.js";
import { registerOverlay } from "./overlays.js";
import { historyImages, promptOf, sameRef, seedOf, workflowOf } from "./runs.js";
import { fromAnyDocument, graphFromPng } from "./serialize.js";
import { el } from "./dom.js";

const MIN_SCALE = 0.02;
const MAX_SCALE = 32;

function button(className, text, title, onClick) {
  const b = el("button", `small ${className}`, text);
  b.type = "button";
  b.title = title;
  b.setAttribute("aria-label", title);
  b.addEventListener("click", onClick);
  return b;
}

export class ImageViewer {
  constructor(app) {
    this.app = app;
    this.root = null;
    this.items = [];
    this.index = 0;
    this.view = { scale: 1, x: 0, y: 0, fitted: true };
    this.unregister = null;
  }

  get item() {
    return this.items[this.index] || null;
  }

  get isOpen() {
    return !!(this.root && this.root.isConnected);
  }

  /** Show `items` ([{ref, promptId?, nodeId?, entry?, number?, index?, count?, maskNode?}]) from `index`. */
  open(items, index = 0) {
    if (!items.length) return;
    if (!this.root) this.build();
    this.items = items;
    if (!this.isOpen) {
      document.body.appendChild(this.root);
      this.previousFocus = document.activeElement;
      this.unregister = registerOverlay(() => this.close());
    }
    this.show(Math.max(0, Math.min(index, items.length - 1)));
    this.root.focus({ preventScroll: true });
  }

  close() {
    if (!this.isOpen) return;
    this.root.remove();
    if (this.unregister) this.unregister();
    this.unregister = null;
    const back = this.previousFocus && this.previousFocus.isConnected ? this.previousFocus : this.app.renderer.canvas;
    back.focus({ preventScroll: true });
  }

  /** The images a node shows: its run's outputs (with the rest of the history to step
   * through) or, for LoadImage, its input image (with the mask editor a click away). */
  async openForNode(node, which = 0) {
    const app = this.app;
    const rt = app.runtime;
    const out = rt.outputs[node.id];
    if (out && out.images && out.images.length) {
      const refs = out.images.map((im) => ({ filename: im.filename, subfolder: im.subfolder || "", type: im.type || "output" }));
      const own = refs.map((ref, i) => ({ ref, promptId: rt.promptId || null, nodeId: null, entry: null, index: i, count: refs.length }));
      await this.openWithHistory(refs[which] || refs[0], own);
      return;
    }
    const name = uploadWidget(app.defFor(node));
    const value = name && node.widgets_values[name];
    if (value) this.open([{ ref: inputImageRef(value), maskNode: node.id, index: 0, count: 1 }]);
  }

  /** Open `ref` among the history's images (all runs), or among `fallback` when the history lacks it. */
  async openWithHistory(ref, fallback = []) {
    let items = [];
    try {
      items = historyImages(await this.app.api.getHistory(200));
    } catch {
      items = [];
    }
    const at = items.findIndex((it) => sameRef(it.ref, ref));
    if (at >= 0) this.open(items, at);
    else if (fallback.length) this.open(fallback, Math.max(0, fallback.findIndex((it) => sameRef(it.ref, ref))));
    else this.open([{ ref, index: 0, count: 1 }]);
  }

  // ---- building ----------------------------------------------------------------------

  build() {
    const root = el("div", "image-viewer");
    root.id = "image-viewer";
    root.tabIndex = -1;
    root.setAttribute("role", "dialog");
    root.setAttribute("aria-modal", "true");
    root.setAttribute("aria-label", "Image viewer");
    this.stage = el("div", "iv-stage");
    this.img = el("img", "iv-image");
    this.img.alt = "";
    this.img.draggable = false;
    this.status = el("div", "iv-status");
    this.stage.append(this.img, this.status);
    this.caption = el("div", "iv-caption");
    root.append(this.buildBar(), this.stage, this.caption);
    this.bindStage();
    this.img.addEventListener("load", () => this.loaded());
    this.img.addEventListener("error", () => {
      this.status.textContent = "image not found";
      this.status.hidden = false;
    });
    root.addEventListener("keydown", (e) => this.onKey(e));
    root.addEventListener("pointerdown", (e) => {
      if (e.target === root) this.close(); // the margin around the stage
    });
    window.addEventListener("resize", () => {
      if (this.isOpen && this.view.fitted) this.fit();
    });
    this.root = root;
  }

  buildBar() {
    const bar = el("div", "iv-bar");
    this.title = el("span", "iv-title");
    this.position = el("span", "iv-pos");
    this.zoomLabel = el("span", "iv-zoom");
    this.seedButton = button("iv-seed", "Copy seed", "Copy the seed of the sampler that made this image", () => this.copySeed());
    this.loadButton = button("iv-load", "Load workflow", "Open the workflow that made this image in a new tab", () => this.loadWorkflow());
    this.maskButton = button("iv-mask", "Edit mask", "Paint a mask on this image (mask editor)", () => this.editMask());
    bar.append(
      button("iv-prev", "‹", "Previous image (←)", () => this.step(-1)),
      button("iv-next", "›", "Next image (→)", () => this.step(1)),
      this.title,
      this.position,
      el("span", "spacer"),
      button("iv-zoom-out", "−", "Zoom out (-)", () => this.zoomBy(1 / 1.25)),
      this.zoomLabel,
      button("iv-zoom-in", "+", "Zoom in (+)", () => this.zoomBy(1.25)),
      button("iv-fit", "Fit", "Fit the image to the window (0)", () => this.fit()),
      button("iv-actual", "1:1", "Actual size (1)", () => this.actualSize()),
      button("iv-download", "Download", "Download the image", () => this.download()),
      this.loadButton,
      this.seedButton,
      this.maskButton,
      button("iv-close close", "×", "Close (Esc)", () => this.close()),
    );
    return bar;
  }

  bindStage() {
    const stage = this.stage;
    stage.addEventListener("wheel", (e) => {
      e.preventDefault();
      const unit = e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? 800 : 1;
      const dy = Math.max(-200, Math.min(200, e.deltaY * unit));
      const rect = stage.getBoundingClientRect();
      this.zoomAt(e.clientX - rect.left, e.clientY - rect.top, this.view.scale * Math.exp(-dy / 300));
    }, { passive: false });
    stage.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      stage.setPointerCapture(e.pointerId);
      const start = [e.clientX, e.clientY, this.view.x, this.view.y];
      const move = (m) => {
        this.view.x = start[2] + m.clientX - start[0];
        this.view.y = start[3] + m.clientY - start[1];
        this.view.fitted = false;
        this.apply();
      };
      const up = () => {
        stage.removeEventListener("pointermove", move);
        stage.removeEventListener("pointerup", up);
        stage.classList.remove("panning");
      };
      stage.classList.add("panning");
      stage.addEventListener("pointermove", move);
      stage.addEventListener("pointerup", up);
    });
    stage.addEventListener("dblclick", () => (this.view.fitted ? this.actualSize() : this.fit()));
  }

  // ---- showing -----------------------------------------------------------------------

  show(index) {
    this.index = index;
    const item = this.item;
    const url = this.app.api.viewUrl(item.ref);
    this.root.dataset.filename = item.ref.filename;
    this.title.textContent = item.ref.subfolder ? `${item.ref.subfolder}/${item.ref.filename}` : item.ref.filename;
    this.title.title = `${item.ref.type}/${this.title.textContent}`;
    const run = item.count > 1 ? ` · image ${item.index + 1} of ${item.count}` : "";
    const number = item.number !== undefined && item.number !== "" ? ` · run #${item.number}` : "";
    this.position.textContent = `${index + 1} / ${this.items.length}${number}${run}`;
    this.view.fitted = true;
    this.status.textContent = "loading…";
    this.status.hidden = false;
    this.img.hidden = true;
    if (this.img.getAttribute("src") === url && this.img.complete && this.img.naturalWidth) this.loaded();
    else this.img.src = url;
    this.maskButton.hidden = item.maskNode === undefined || item.maskNode === null;
    this.root.querySelector(".iv-prev").disabled = index === 0;
    this.root.querySelector(".iv-next").disabled = index === this.items.length - 1;
    this.updateRunInfo();
  }

  loaded() {
    this.status.hidden = true;
    this.img.hidden = false;
    this.img.style.width = `${this.img.naturalWidth}px`;
    this.img.style.height = `${this.img.naturalHeight}px`;
    this.fit();
    this.caption.dataset.size = `${this.img.naturalWidth}x${this.img.naturalHeight}`;
    this.updateCaption();
  }

  /** The seed and the workflow of the image's run (its history entry, fetched when not known yet). */
  async updateRunInfo() {
    const item = this.item;
    if (item.promptId && !item.entry) {
      try {
        const found = await this.app.api.fetchJson(`/history/${encodeURIComponent(item.promptId)}`);
        item.entry = (found && found[item.promptId]) || null;
      } catch {
        item.entry = null;
      }
      if (item.entry && item.nodeId === null) item.nodeId = nodeOfImage(item.entry, item.ref);
      if (this.item !== item) return;
    }
    const found = item.entry ? seedOf(promptOf(item.entry), item.nodeId) : null;
    this.seed = found;
    this.seedButton.disabled = !found;
    this.seedButton.dataset.seed = found ? String(found.seed) : "";
    this.loadButton.disabled = !workflowOf(item.entry) && !promptOf(item.entry) && !/\.png$/i.test(item.ref.filename);
    this.updateCaption();
  }

  updateCaption() {
    const item = this.item;
    const parts = [];
    if (this.img.naturalWidth && !this.img.hidden) parts.push(`${this.img.naturalWidth} × ${this.img.naturalHeight}`);
    parts.push(`${item.ref.type}/`);
    if (this.seed) parts.push(`seed ${this.seed.seed} (${this.seed.classType} #${this.seed.nodeId})`);
    this.caption.textContent = parts.join(" · ");
  }

  step(delta) {
    const next = this.index + delta;
    if (next >= 0 && next < this.items.length) this.show(next);
  }

  /** To the first image of the previous (-1, newer) or next (+1, older) run. */
  stepRun(delta) {
    const runOf = (it) => it.promptId || "";
    const here = runOf(this.item);
    let i = this.index;
    while (i >= 0 && i < this.items.length && runOf(this.items[i]) === here) i += delta;
    if (i < 0 || i >= this.items.length) return;
    if (delta < 0) while (i > 0 && runOf(this.items[i - 1]) === runOf(this.items[i])) i--;
    this.show(i);
  }

  // ---- zoom ----------------------------------------------------------------------------

  apply() {
    const { scale, x, y } = this.view;
    this.img.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
    this.img.classList.toggle("pixelated", scale >= 3);
    this.zoomLabel.textContent = `${Math.round(scale * 100)}%`;
    this.root.dataset.scale = String(scale);
  }

  fit() {
    const w = this.img.naturalWidth, h = this.img.naturalHeight;
    if (!w || !h) return;
    const rect = this.stage.getBoundingClientRect();
    const scale = Math.max(MIN_SCALE, Math.min(MAX_SCALE, Math.min((rect.width - 16) / w, (rect.height - 16) / h)));
    this.view = { scale, x: (rect.width - w * scale) / 2, y: (rect.height - h * scale) / 2, fitted: true };
    this.apply();
  }

  actualSize() {
    const rect = this.stage.getBoundingClientRect();
    const w = this.img.naturalWidth, h = this.img.naturalHeight;
    this.view = { scale: 1, x: (rect.width - w) / 2, y: (rect.height - h) / 2, fitted: false };
    this.apply();
  }

  zoomBy(factor) {
    const rect = this.stage.getBoundingClientRect();
    this.zoomAt(rect.width / 2, rect.height / 2, this.view.scale * factor);
  }

  /** Zoom to `scale` keeping the stage point (sx, sy) over the same pixel of the image. */
  zoomAt(sx, sy, scale) {
    const v = this.view;
    const s = Math.max(MIN_SCALE, Math.min(MAX_SCALE, scale));
    v.x = sx - ((sx - v.x) * s) / v.scale;
    v.y = sy - ((sy - v.y) * s) / v.scale;
    v.scale = s;
    v.fitted = false;
    this.apply();
  }

  // ---- actions -------------------------------------------------------------------------

  download() {
    const a = document.createElement("a");
    a.href = this.app.api.viewUrl(this.item.ref);
    a.download = this.item.ref.filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  /** The run's workflow (as queued), else the workflow embedded in the PNG, in a new tab. */
  async loadWorkflow() {
    const app = this.app;
    const item = this.item;
    const name = item.number !== undefined && item.number !== "" ? `Run #${item.number}` : item.ref.filename.replace(/\.png$/i, "");
    try {
      const saved = workflowOf(item.entry) || promptOf(item.entry);
      let graph;
      if (saved) graph = fromAnyDocument(saved, app.defs);
      else {
        const res = await fetch(app.api.viewUrl(item.ref), { cache: "no-store" });
        if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
        graph = await graphFromPng(await res.arrayBuffer(), app.defs);
      }
      this.close();
      app.loadGraph(graph, name); // a new tab (or the blank one), its missing models listed
      if (item.entry) app.tab.runtime.outputs = item.entry.outputs || {};
      app.toast(`Opened the workflow of ${item.ref.filename}`, "info", 2000);
    } catch (e) {
      app.toast(`No workflow in ${item.ref.filename}: ${e.message}`, "error");
    }
  }

  async copySeed() {
    if (!this.seed) return;
    const text = String(this.seed.seed);
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = Object.assign(document.createElement("textarea"), { value: text });
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
      this.root.focus({ preventScroll: true });
    }
    this.app.toast(`Seed ${text} copied`, "info", 2000);
  }

  editMask() {
    const id = this.item.maskNode;
    const node = this.app.graph.nodes.find((n) => n.id === id);
    this.close();
    if (node && this.app.maskEditor) this.app.maskEditor.open(node);
  }

  onKey(e) {
    const keys = {
      ArrowLeft: () => this.step(-1), ArrowRight: () => this.step(1),
      ArrowUp: () => this.stepRun(-1), ArrowDown: () => this.stepRun(1),
      PageUp: () => this.stepRun(-1), PageDown: () => this.stepRun(1),
      "+": () => this.zoomBy(1.25), "=": () => this.zoomBy(1.25), "-": () => this.zoomBy(1 / 1.25),
      0: () => this.fit(), 1: () => this.actualSize(), Escape: () => this.close(),
    };
    e.stopPropagation(); // the canvas's shortcuts stay out of the viewer
    const run = !e.ctrlKey && !e.metaKey && !e.altKey ? keys[e.key] : null;
    if (!run) return;
    e.preventDefault();
    run();
  }
}

/** The output node of an entry that shows `ref`, or null. */
function nodeOfImage(entry, ref) {
  for (const [nodeId, out] of Object.entries(entry.outputs || {})) {
    if (((out && out.images) || []).some((im) => sameRef({ subfolder: "", type: "output", ...im }, ref))) return nodeId;
  }
  return null;
}
