// The model browser: the server's model files by folder (checkpoints, loras, vae, ...) with
// each file's size and the family its header tells (SD1.x, SD2.x, SDXL, ...), from
// GET /experiment/models and /experiment/models/{folder}. A filter narrows every folder at
// once; dragging a file onto the canvas adds the loader that takes it, with the file picked.

import { dragToCanvas, registerDock, setDock, viewCentre } from "./dock.js";

export const FAMILY_LABELS = {
  sd1: "SD1.x", sd2: "SD2.x", sdxl: "SDXL", clip_l: "CLIP-L", clip_g: "CLIP-G", clip_h: "CLIP-H",
};
/** The loader a dropped file of each folder makes, where several nodes take that folder. */
const PREFERRED_LOADERS = ["CheckpointLoaderSimple", "LoraLoader", "VAELoader", "ControlNetLoader", "UNETLoader", "CLIPLoader"];

export function formatSize(bytes) {
  if (!Number.isFinite(bytes)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export class ModelBrowser {
  constructor(app, el, button) {
    this.app = app;
    this.el = el;
    this.folders = [];
    this.open = new Set(["checkpoints"]);
    this.build();
    registerDock(el, button, () => this.refresh());
  }

  build() {
    const head = document.createElement("div");
    head.className = "dock-head";
    const title = document.createElement("h2");
    title.textContent = "Models";
    const refresh = document.createElement("button");
    refresh.className = "small model-refresh";
    refresh.textContent = "Refresh";
    refresh.title = "Read the model folders again";
    refresh.addEventListener("click", () => this.refresh());
    const close = document.createElement("button");
    close.className = "close";
    close.title = "Close";
    close.textContent = "×";
    close.addEventListener("click", () => setDock(null));
    head.append(title, refresh, close);
    this.input = document.createElement("input");
    this.input.type = "search";
    this.input.className = "model-filter";
    this.input.placeholder = "Filter models…";
    this.input.setAttribute("aria-label", "Filter models");
    this.input.addEventListener("input", () => this.render());
    this.input.addEventListener("keydown", (e) => e.stopPropagation());
    this.list = document.createElement("div");
    this.list.className = "model-folders";
    this.list.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.el.append(head, this.input, this.list);
  }

  async refresh() {
    const api = this.app.api;
    this.list.textContent = "Loading…";
    let folders;
    try {
      folders = await api.modelFolders();
    } catch (e) {
      this.list.textContent = `Could not list the model folders: ${e.message}`;
      return;
    }
    const files = await Promise.all(folders.map((f) => api.modelFiles(f.name).catch(() => [])));
    this.folders = folders.map((f, i) => ({ name: f.name, files: files[i] }));
    this.render();
  }

  render() {
    const terms = this.input.value.toLowerCase().split(/\s+/).filter(Boolean);
    const matches = (f) => terms.every((t) => f.name.toLowerCase().includes(t) || (FAMILY_LABELS[f.family] || "").toLowerCase().includes(t));
    this.list.textContent = "";
    for (const folder of this.folders) {
      const files = folder.files.filter(matches);
      if (terms.length && !files.length) continue;
      const open = terms.length > 0 || this.open.has(folder.name);
      const section = document.createElement("section");
      section.className = "model-folder";
      section.dataset.folder = folder.name;
      const head = document.createElement("button");
      head.className = "folder-head";
      head.setAttribute("aria-expanded", String(open));
      head.title = `models/${folder.name}/`;
      head.textContent = `${open ? "▾" : "▸"} ${folder.name}`;
      const count = document.createElement("span");
      count.className = "lib-count";
      count.textContent = terms.length ? `${files.length} of ${folder.files.length}` : String(folder.files.length);
      head.appendChild(count);
      head.addEventListener("click", () => {
        if (this.open.has(folder.name)) this.open.delete(folder.name);
        else this.open.add(folder.name);
        this.render();
      });
      section.appendChild(head);
      if (open) section.appendChild(this.fileList(folder.name, files));
      this.list.appendChild(section);
    }
  }

  fileList(folder, files) {
    const ul = document.createElement("ul");
    ul.className = "model-files";
    if (!files.length) {
      const li = document.createElement("li");
      li.className = "model-empty";
      li.textContent = `No files. Put them in models/${folder}/ and press Refresh.`;
      ul.appendChild(li);
    }
    for (const f of files) {
      const li = document.createElement("li");
      li.className = "model-file";
      li.dataset.name = f.name;
      li.title = this.loaderFor(folder) ? `${f.name}\nDrag onto the canvas (or click) to add a loader for it` : f.name;
      const name = document.createElement("span");
      name.className = "model-name";
      name.textContent = f.name;
      const meta = document.createElement("span");
      meta.className = "model-meta";
      if (f.family) meta.appendChild(badge(FAMILY_LABELS[f.family] || f.family, `family ${f.family}`));
      if (f.builtin) meta.appendChild(badge("built-in", "builtin"));
      const size = document.createElement("span");
      size.className = "model-size";
      size.textContent = formatSize(f.size);
      meta.appendChild(size);
      li.append(name, meta);
      ul.appendChild(li);
    }
    return ul;
  }

  /** [node type, input name] of the loader that takes a file of `folder`, or null. */
  loaderFor(folder) {
    const found = [];
    for (const def of Object.values(this.app.defs)) {
      const spec = def.inputs.find((i) => i.type === "COMBO" && i.opts && i.opts.model_folder === folder);
      if (spec) found.push([def.name, spec.name]);
    }
    found.sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0]));
    return found[0] || null;
  }

  onPointerDown(e) {
    const li = e.target.closest(".model-file");
    if (!li) return;
    const folder = li.closest(".model-folder").dataset.folder;
    const loader = this.loaderFor(folder);
    if (!loader) return;
    const add = (pos) => this.addLoader(loader, li.dataset.name, pos);
    dragToCanvas(this.app, e, li.dataset.name, add, () => add(viewCentre(this.app)));
  }

  addLoader([type, input], file, pos) {
    const app = this.app;
    const def = app.defs[type];
    const node = app.cmd(`Add ${def.display_name}`, () => {
      const n = app.addNodeRaw(def, pos);
      n.widgets_values[input] = file;
      app.editing.fitWidth(n); // wide enough for the file's name
      return n;
    });
    app.setSelection([node.id]);
  }
}

function rank(type) {
  const i = PREFERRED_LOADERS.indexOf(type);
  return i < 0 ? PREFERRED_LOADERS.length : i;
}

function badge(text, className) {
  const el = document.createElement("span");
  el.className = `badge ${className}`;
  el.textContent = text;
  return el;
}
