// The images panel (a panel of the left dock; the Images button or I): thumbnails of the
// outputs (the runs' images from /history, newest first, then the other files of output/)
// and of the inputs (the files of input/, from ComfyUI's /internal/files/input). A click
// opens the image viewer on that list.

import { registerDock, setDock } from "./dock.js";
import { ImageViewer } from "./image_viewer.js";
import { MaskEditor } from "./mask_editor.js";
import { historyImages, sameRef } from "./runs.js";
import { el } from "./dom.js";

const IMAGE_FILE = /\.(png|jpe?g|webp|gif|bmp)$/i;
const MAX_THUMBS = 300;

export class Gallery {
  constructor(app, root, button) {
    this.app = app;
    this.el = root;
    this.tab = "outputs";
    this.items = { outputs: [], inputs: [] };
    this.timer = null;
    this.build();
    registerDock(root, button, () => this.refresh());
    // new images while the panel is open
    app.api.addEventListener("execution_success", () => this.refreshSoon());
    app.api.addEventListener("execution_interrupted", () => this.refreshSoon());
  }

  build() {
    const head = el("div", "dock-head");
    const close = el("button", "close", "×");
    close.title = "Close";
    close.addEventListener("click", () => setDock(null));
    head.append(el("h2", "", "Images"), close);
    const tabs = el("div", "gal-tabs");
    tabs.setAttribute("role", "tablist");
    this.tabButtons = {};
    for (const [key, label] of [["outputs", "Outputs"], ["inputs", "Inputs"]]) {
      const b = el("button", `small gal-tab gal-tab-${key}`, label);
      b.type = "button";
      b.setAttribute("role", "tab");
      b.addEventListener("click", () => {
        this.tab = key;
        this.render();
      });
      this.tabButtons[key] = b;
      tabs.appendChild(b);
    }
    const refresh = el("button", "small gal-refresh", "Refresh");
    refresh.addEventListener("click", () => this.refresh());
    tabs.appendChild(refresh);
    this.grid = el("div", "gal-grid");
    this.grid.setAttribute("aria-label", "Images");
    this.el.append(head, tabs, this.grid);
  }

  refreshSoon() {
    if (this.el.hidden) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), 200);
  }

  async refresh() {
    const api = this.app.api;
    const [history, outputs, inputs] = await Promise.all([
      api.getHistory(200).catch(() => ({})),
      api.listFiles("output").catch(() => []),
      api.listFiles("input").catch(() => []),
    ]);
    const runs = historyImages(history);
    const others = outputs
      .filter((name) => IMAGE_FILE.test(name))
      .map((name) => ({ ref: { filename: name, subfolder: "", type: "output" }, index: 0, count: 1 }))
      .filter((it) => !runs.some((r) => sameRef(r.ref, it.ref)));
    this.items.outputs = [...runs, ...others].slice(0, MAX_THUMBS);
    this.items.inputs = inputs
      .filter((name) => IMAGE_FILE.test(name))
      .slice(0, MAX_THUMBS)
      .map((name) => ({ ref: { filename: name, subfolder: "", type: "input" }, index: 0, count: 1 }));
    this.render();
  }

  render() {
    for (const [key, b] of Object.entries(this.tabButtons)) {
      b.classList.toggle("on", key === this.tab);
      b.setAttribute("aria-selected", String(key === this.tab));
      b.textContent = `${key === "outputs" ? "Outputs" : "Inputs"} (${this.items[key].length})`;
    }
    const items = this.items[this.tab];
    this.grid.textContent = "";
    if (!items.length) {
      this.grid.appendChild(el("div", "gal-empty", this.tab === "outputs" ? "No images yet: queue a workflow that saves or previews one." : "No files in input/ yet: upload one on a Load Image node."));
      return;
    }
    items.forEach((item, i) => this.grid.appendChild(this.thumb(item, items, i)));
  }

  thumb(item, items, i) {
    const b = el("button", "gal-thumb");
    b.type = "button";
    b.dataset.filename = item.ref.filename;
    b.dataset.type = item.ref.type;
    const label = item.ref.subfolder ? `${item.ref.subfolder}/${item.ref.filename}` : item.ref.filename;
    b.title = item.number !== undefined ? `${label} (run #${item.number})` : label;
    const img = el("img");
    img.loading = "lazy";
    img.alt = label;
    img.src = this.app.api.viewUrl(item.ref);
    b.appendChild(img);
    b.addEventListener("click", () => this.app.viewer.open(items, i));
    return b;
  }
}

/** The image viewer (app.viewer), the mask editor (app.maskEditor), the images panel
 * (app.gallery) and its command (I); after installUserFeatures, which makes the keybindings. */
export function installImages(app) {
  app.viewer = new ImageViewer(app);
  app.maskEditor = new MaskEditor(app);
  const button = document.getElementById("images-toggle");
  app.gallery = new Gallery(app, document.getElementById("image-gallery"), button);
  if (app.keybindings) app.keybindings.register("Workspace.ToggleSidebarTab.assets", "Show or hide the images panel", () => button.click(), [{ key: "i" }]);
}
