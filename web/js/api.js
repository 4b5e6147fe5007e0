// The server's public HTTP/WebSocket API (ComfyUI's shapes), built on the base path the
// page was served under so the editor works behind a reverse proxy.

import { askForToken } from "./token.js";

export class Api extends EventTarget {
  constructor(basePath = "") {
    super();
    this.base = basePath.replace(/\/+$/, "");
    this.clientId = sessionStorage.getItem("weft.clientId") || cryptoId();
    sessionStorage.setItem("weft.clientId", this.clientId);
    this.socket = null;
    this.connected = false;
    this.lastNode = null; // node of the last executing/progress message, for binary previews
    this.retry = 0;
  }

  url(path) {
    return `${this.base}/api${path}`;
  }

  async fetchJson(path, options = {}) {
    const res = await fetch(this.url(path), { cache: "no-store", ...options });
    if (res.status === 401) await askForToken(this.base); // off loopback: the page reloads with it
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = { error: { message: text || res.statusText } };
    }
    if (!res.ok) {
      const err = new Error((body && body.error && (body.error.message || body.error)) || `${res.status} ${res.statusText}`);
      err.status = res.status;
      err.body = body;
      throw err;
    }
    return body;
  }

  objectInfo() {
    return this.fetchJson("/object_info");
  }

  /** The model folders ([{name, folders}]), as ComfyUI's /experiment/models gives them. */
  modelFolders() {
    return this.fetchJson("/experiment/models");
  }

  /** A folder's files with name, size, dates and Weft's detected family. */
  modelFiles(folder) {
    return this.fetchJson(`/experiment/models/${encodeURIComponent(folder)}`);
  }

  /**
   * extraPngInfo: what SaveImage writes into the PNG's text chunks ({workflow, ...}).
   * The canvas shows live previews, so it asks for them: like ComfyUI, the server sends none
   * unless the client's extra_data.preview_method (or the server's --preview-method) asks.
   */
  queuePrompt(prompt, extraPngInfo, front = false, promptId = null) {
    // the "Live preview method" setting (settings.js); "auto" until the settings are read
    const extra_data = { extra_pnginfo: extraPngInfo, preview_method: this.previewMethod || "auto" };
    const body = { prompt, client_id: this.clientId, extra_data };
    if (promptId) body.prompt_id = promptId; // known before the first event arrives
    if (front) body.front = true;
    return this.fetchJson("/prompt", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  getQueue() {
    return this.fetchJson("/queue");
  }

  getHistory(max = 50) {
    return this.fetchJson(`/history?max_items=${max}`);
  }

  deleteFromQueue(ids) {
    return this.fetchJson("/queue", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ delete: ids }),
    });
  }

  clearQueue() {
    return this.fetchJson("/queue", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ clear: true }),
    });
  }

  interrupt() {
    return this.fetchJson("/interrupt", { method: "POST" });
  }

  deleteHistory(ids) {
    return this.fetchJson("/history", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(ids ? { delete: ids } : { clear: true }),
    });
  }

  async uploadImage(file, { type = "input", subfolder = "", overwrite = false } = {}) {
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("type", type);
    form.append("subfolder", subfolder);
    form.append("overwrite", overwrite ? "true" : "false");
    return this.fetchJson("/upload/image", { method: "POST", body: form });
  }

  /** A mask painted on image `originalRef` ({filename, subfolder, type}): ComfyUI's
   * POST /upload/mask stores the original with `maskBlob`'s alpha as a clipspace copy in input/. */
  uploadMask(maskBlob, name, originalRef, subfolder = "clipspace") {
    const form = new FormData();
    form.append("image", maskBlob, name);
    form.append("type", "input");
    form.append("subfolder", subfolder);
    form.append("original_ref", JSON.stringify(originalRef));
    return this.fetchJson("/upload/mask", { method: "POST", body: form });
  }

  /** The file names of input/, output/ or temp/ (no subfolders), newest first (ComfyUI's /internal/files). */
  listFiles(kind) {
    return this.fetchJson(`/internal/files/${encodeURIComponent(kind)}`);
  }

  viewUrl({ filename, subfolder = "", type = "output" }) {
    const q = new URLSearchParams({ filename, subfolder, type });
    return `${this.url("/view")}?${q}`;
  }

  connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}${this.base}/ws?clientId=${encodeURIComponent(this.clientId)}`;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.socket = ws;
    ws.addEventListener("open", () => {
      this.connected = true;
      this.retry = 0;
      this.emit("connection", { connected: true });
    });
    ws.addEventListener("close", () => {
      if (this.socket !== ws) return;
      this.connected = false;
      this.emit("connection", { connected: false });
      const delay = Math.min(5000, 300 * 2 ** this.retry++);
      setTimeout(() => this.connect(), delay);
    });
    ws.addEventListener("message", (ev) => this.onMessage(ev.data));
  }

  onMessage(data) {
    if (data instanceof ArrayBuffer) {
      if (data.byteLength < 8) return;
      const view = new DataView(data);
      const event = view.getUint32(0);
      if (event !== 1) return;
      const format = view.getUint32(4) === 2 ? "image/png" : "image/jpeg";
      const blob = new Blob([data.slice(8)], { type: format });
      this.emit("preview", { blob, node: this.lastNode });
      return;
    }
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!msg || !msg.type) return;
    const d = msg.data || {};
    if (msg.type === "status" && typeof d.sid === "string" && d.sid && d.sid !== this.clientId) {
      // the server gives a second tab (a duplicated one shares sessionStorage) its own id
      // rather than letting it take this id over; use the id it gave, as ComfyUI's front end does
      this.clientId = d.sid;
      sessionStorage.setItem("weft.clientId", d.sid);
    }
    if (this.onAny) {
      try {
        this.onAny(msg.type, d);
      } catch (e) {
        console.error(e);
      }
    }
    if (msg.type === "executing" || msg.type === "progress") this.lastNode = d.display_node || d.node || this.lastNode;
    this.emit(msg.type, d);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function cryptoId() {
  if (crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
