// Files in and out of the editor: open (picker or drop: Weft and ComfyUI JSON, PNGs that
// carry a workflow), save, export in both API and UI formats, and image uploads to nodes.

import { inputImageRef } from "./layout.js";
import { fromAnyDocument, graphFromPng, toApiPrompt, toComfyWorkflow, toDocument } from "./serialize.js";
import { getNode } from "./state.js";

export class Files {
  constructor(app) {
    this.app = app;
  }

  async loadFile(file) {
    const app = this.app;
    const name = file.name.replace(/\.(json|png)$/i, "");
    try {
      if (file.type === "image/png" || /\.png$/i.test(file.name)) {
        const graph = await graphFromPng(await file.arrayBuffer(), app.defs);
        app.loadGraph(graph, name);
      } else {
        const graph = fromAnyDocument(await file.text(), app.defs);
        app.loadGraph(graph, name, file.name);
      }
      app.toast(`Opened ${file.name}`, "info", 2000);
    } catch (e) {
      app.toast(`Could not open ${file.name}: ${e.message}`, "error");
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
    const app = this.app;
    const tab = app.tab;
    let name = tab.fileName || `${tab.name}.json`;
    if (!/\.json$/i.test(name)) name += ".json";
    this.download(JSON.stringify(toDocument(app.graph), null, 2), name);
    tab.modified = false;
    tab.fileName = name;
    app.renderTabs();
    app.persistSoon();
  }

  exportComfy() {
    this.download(JSON.stringify(this.comfyWorkflowOf(this.app.graph), null, 2), `${this.app.tab.name}.comfyui.json`);
  }

  exportApi() {
    this.download(JSON.stringify(toApiPrompt(this.app.graph, this.app.defs), null, 2), `${this.app.tab.name}.api.json`);
  }

  /** The graph in ComfyUI's UI format, with the heights the nodes are drawn at. */
  comfyWorkflowOf(graph) {
    const wf = toComfyWorkflow(graph, this.app.defs);
    // ComfyUI needs real heights: use the drawn ones
    for (const n of wf.nodes) {
      const node = getNode(graph, n.id);
      if (node) n.size = [node.size[0], Math.round(this.app.renderer.layout(node).h)];
    }
    return wf;
  }

  /** Files dropped on the page open as workflows; an image dropped on LoadImage goes to it. */
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
      if (await this.dropOnNode(canvas, e, file)) return;
      await this.loadFile(file);
    });
    document.getElementById("file-input").addEventListener("change", (e) => {
      const f = e.target.files[0];
      if (f) this.loadFile(f);
    });
  }

  /** Upload an image dropped on a node that picks input images; true when it was one. */
  async dropOnNode(canvas, e, file) {
    const app = this.app;
    const rect = canvas.getBoundingClientRect();
    const [wx, wy] = app.renderer.toWorld(e.clientX - rect.left, e.clientY - rect.top);
    const h = app.interaction.hit(wx, wy);
    if (!h || !h.node || !/^image\//.test(file.type)) return false;
    const def = app.defFor(h.node);
    const spec = def && def.inputs.find((i) => i.opts && i.opts.image_upload);
    if (!spec) return false;
    await this.uploadTo(h.node, spec.name, file);
    return true;
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
    const app = this.app;
    const max = app.config.features && app.config.features.max_upload_size;
    if (max && file.size > max) {
      app.toast(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the server accepts up to ${(max / 1048576).toFixed(0)} MB`, "error");
      return;
    }
    try {
      const res = await app.api.uploadImage(file);
      const value = res.subfolder ? `${res.subfolder}/${res.name}` : res.name;
      const def = app.defFor(node);
      const spec = def && def.inputs.find((i) => i.name === widgetName);
      if (spec && spec.choices && !spec.choices.includes(value)) spec.choices.push(value);
      app.renderer.images.delete(app.api.viewUrl(inputImageRef(value)));
      app.cmd(`Upload ${file.name}`, () => {
        node.widgets_values[widgetName] = value;
      });
    } catch (e) {
      app.toast(`Upload failed: ${e.message}`, "error");
    }
  }
}
