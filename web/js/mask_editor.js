// The mask editor of LoadImage (and any node whose image input uploads): paint and erase a
// mask over the picture with a round brush (size, hardness), invert, clear, undo, save. Saved
// as ComfyUI's front end saves it: the picture with the mask in its alpha channel (masked =
// transparent), uploaded through POST /upload/mask (original_ref: the picture it was painted
// on) as a clipspace copy, input/clipspace/clipspace-mask-<n>.png; the node's image widget
// then names that copy, so LoadImage's MASK output (1 - alpha) is what was painted.

import { inputImageRef, uploadWidget } from "./layout.js";
import { registerOverlay } from "./overlays.js";
import { decodePng } from "./png_pixels.js";
import { el } from "./dom.js";

const MASK_RGB = [230, 60, 120]; // how painted pixels show; only their alpha is the mask
const UNDO_STEPS = 30;

function button(className, text, title, onClick) {
  const b = el("button", `small ${className}`, text);
  b.type = "button";
  b.title = title;
  b.addEventListener("click", onClick);
  return b;
}

function slider(className, label, min, max, value, format) {
  const wrap = el("label", `me-slider ${className}`);
  const input = Object.assign(document.createElement("input"), { type: "range", min, max, value, step: 1 });
  input.setAttribute("aria-label", label);
  const shown = el("span", "me-value", format(value));
  input.addEventListener("input", () => (shown.textContent = format(Number(input.value))));
  wrap.append(el("span", "", label), input, shown);
  return { wrap, input, shown, format };
}

export class MaskEditor {
  constructor(app) {
    this.app = app;
    this.root = null;
    this.node = null;
    this.mode = "paint";
    this.undoStack = [];
  }

  get isOpen() {
    return !!(this.root && this.root.isConnected);
  }

  /** Open the editor on `node`'s picked image. */
  async open(node) {
    const app = this.app;
    this.widget = uploadWidget(app.defFor(node));
    const value = this.widget && node.widgets_values[this.widget];
    if (!value) {
      app.toast("Pick or upload an image first: the mask is painted on it.", "warn");
      return;
    }
    if (!this.root) this.build();
    this.node = node;
    this.ref = inputImageRef(value);
    this.title.textContent = `Mask: ${value}`;
    try {
      await this.load(app.api.viewUrl(this.ref));
    } catch (e) {
      app.toast(`Could not open ${value} in the mask editor: ${e.message}`, "error");
      return;
    }
    this.undoStack = [];
    this.setMode("paint");
    document.body.appendChild(this.root);
    this.unregister = registerOverlay(() => this.close());
    this.fit();
    this.root.focus({ preventScroll: true });
  }

  close() {
    if (!this.isOpen) return;
    this.root.remove();
    if (this.unregister) this.unregister();
    this.unregister = null;
    this.app.renderer.canvas.focus({ preventScroll: true });
  }

  // ---- building ----------------------------------------------------------------------

  build() {
    const root = el("div", "mask-editor");
    root.id = "mask-editor";
    root.tabIndex = -1;
    root.setAttribute("role", "dialog");
    root.setAttribute("aria-modal", "true");
    root.setAttribute("aria-label", "Mask editor");
    this.stage = el("div", "me-stage");
    this.imageCanvas = el("canvas", "me-image");
    this.maskCanvas = el("canvas", "me-mask");
    this.cursor = el("div", "me-cursor");
    this.cursor.hidden = true;
    this.stage.append(this.imageCanvas, this.maskCanvas, this.cursor);
    root.append(this.buildBar(), this.stage);
    this.bindPainting();
    root.addEventListener("keydown", (e) => this.onKey(e));
    window.addEventListener("resize", () => this.isOpen && this.fit());
    this.root = root;
  }

  buildBar() {
    const bar = el("div", "me-bar");
    this.title = el("span", "me-title");
    this.paintButton = button("me-paint", "Paint", "Paint the mask (B)", () => this.setMode("paint"));
    this.eraseButton = button("me-erase", "Erase", "Erase the mask (E; or paint with the right button)", () => this.setMode("erase"));
    this.size = slider("me-size", "Brush", 1, 256, 32, (v) => `${v} px`);
    this.hardness = slider("me-hardness", "Hardness", 0, 100, 80, (v) => `${v}%`);
    bar.append(
      this.title,
      this.paintButton,
      this.eraseButton,
      this.size.wrap,
      this.hardness.wrap,
      button("me-invert", "Invert", "Invert the mask (I)", () => this.edit((ctx) => this.invert(ctx))),
      button("me-clear", "Clear", "Clear the mask", () => this.edit((ctx) => ctx.clearRect(0, 0, this.w, this.h))),
      button("me-undo", "Undo", "Undo the last stroke (Ctrl+Z)", () => this.undo()),
      el("span", "spacer"),
      button("me-cancel", "Cancel", "Close without saving (Esc)", () => this.close()),
      button("me-save primary", "Save", "Save the mask to the node's image (Ctrl+S)", () => this.save()),
    );
    return bar;
  }

  setMode(mode) {
    this.mode = mode;
    this.paintButton.classList.toggle("on", mode === "paint");
    this.eraseButton.classList.toggle("on", mode === "erase");
    this.root.dataset.mode = mode;
  }

  /** The picture (its colours exactly as stored, even under a mask) and its mask (1 - alpha). */
  async load(url) {
    const res = await fetch(url, { cache: "no-store" });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    const blob = await res.blob();
    let pixels = null;
    try {
      pixels = await decodePng(await blob.arrayBuffer());
    } catch {
      pixels = null;
    }
    if (!pixels) {
      const bitmap = await createImageBitmap(blob);
      const c = Object.assign(document.createElement("canvas"), { width: bitmap.width, height: bitmap.height });
      c.getContext("2d").drawImage(bitmap, 0, 0);
      pixels = { width: bitmap.width, height: bitmap.height, data: c.getContext("2d").getImageData(0, 0, bitmap.width, bitmap.height).data };
    }
    this.w = pixels.width;
    this.h = pixels.height;
    const picture = new ImageData(this.w, this.h);
    const mask = new ImageData(this.w, this.h);
    const [pd, md, src] = [picture.data, mask.data, pixels.data];
    for (let i = 0; i < pd.length; i += 4) {
      pd[i] = src[i];
      pd[i + 1] = src[i + 1];
      pd[i + 2] = src[i + 2];
      pd[i + 3] = 255;
      md[i] = MASK_RGB[0];
      md[i + 1] = MASK_RGB[1];
      md[i + 2] = MASK_RGB[2];
      md[i + 3] = 255 - src[i + 3];
    }
    for (const c of [this.imageCanvas, this.maskCanvas]) Object.assign(c, { width: this.w, height: this.h });
    this.imageCanvas.getContext("2d").putImageData(picture, 0, 0);
    this.maskCtx = this.maskCanvas.getContext("2d", { willReadFrequently: true });
    this.maskCtx.putImageData(mask, 0, 0);
  }

  /** Scale the canvases to fit the stage, centred. */
  fit() {
    const rect = this.stage.getBoundingClientRect();
    const scale = Math.min((rect.width - 24) / this.w, (rect.height - 24) / this.h);
    this.scale = scale;
    const w = this.w * scale, h = this.h * scale;
    for (const c of [this.imageCanvas, this.maskCanvas]) {
      Object.assign(c.style, { width: `${w}px`, height: `${h}px`, left: `${(rect.width - w) / 2}px`, top: `${(rect.height - h) / 2}px` });
    }
    this.stage.classList.toggle("pixelated", scale >= 3); // each pixel visible when painting up close
    this.root.dataset.scale = String(scale);
  }

  // ---- painting ----------------------------------------------------------------------

  /** The image pixel under a pointer event. */
  toImage(e) {
    const r = this.maskCanvas.getBoundingClientRect();
    return [((e.clientX - r.left) * this.w) / r.width, ((e.clientY - r.top) * this.h) / r.height];
  }

  bindPainting() {
    const stage = this.stage;
    stage.addEventListener("contextmenu", (e) => e.preventDefault());
    stage.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 && e.button !== 2) return;
      e.preventDefault();
      stage.setPointerCapture(e.pointerId);
      this.pushUndo();
      const erase = e.button === 2 || this.mode === "erase";
      let last = this.toImage(e);
      this.dab(last, erase);
      const move = (m) => {
        const p = this.toImage(m);
        this.strokeTo(last, p, erase);
        last = p;
      };
      const up = () => {
        stage.removeEventListener("pointermove", move);
        stage.removeEventListener("pointerup", up);
      };
      stage.addEventListener("pointermove", move);
      stage.addEventListener("pointerup", up);
    });
    stage.addEventListener("pointermove", (e) => this.moveCursor(e));
    stage.addEventListener("pointerleave", () => (this.cursor.hidden = true));
    stage.addEventListener("wheel", (e) => {
      e.preventDefault(); // the wheel sizes the brush
      this.setSize(Number(this.size.input.value) * (e.deltaY < 0 ? 1.15 : 1 / 1.15));
      this.moveCursor(e);
    }, { passive: false });
  }

  moveCursor(e) {
    const d = Number(this.size.input.value) * this.scale;
    const r = this.stage.getBoundingClientRect();
    Object.assign(this.cursor.style, { width: `${d}px`, height: `${d}px`, left: `${e.clientX - r.left - d / 2}px`, top: `${e.clientY - r.top - d / 2}px` });
    this.cursor.hidden = false;
  }

  setSize(v) {
    const size = Math.max(1, Math.min(256, Math.round(v)));
    this.size.input.value = String(size);
    this.size.shown.textContent = this.size.format(size);
  }

  /** Dabs from a to b, a quarter of the radius apart. */
  strokeTo(a, b, erase) {
    const radius = Number(this.size.input.value) / 2;
    const gap = Math.max(0.5, radius / 4);
    const n = Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / gap);
    for (let i = 1; i <= n; i++) this.dab([a[0] + ((b[0] - a[0]) * i) / n, a[1] + ((b[1] - a[1]) * i) / n], erase);
  }

  /** One round dab: solid out to `hardness` of the radius, fading to nothing at the rim. */
  dab([x, y], erase) {
    const ctx = this.maskCtx;
    const radius = Math.max(0.5, Number(this.size.input.value) / 2);
    const hard = Number(this.hardness.input.value) / 100;
    const [r, g, b] = MASK_RGB;
    ctx.save();
    ctx.globalCompositeOperation = erase ? "destination-out" : "source-over";
    if (hard >= 1) ctx.fillStyle = `rgb(${r},${g},${b})`;
    else {
      const grad = ctx.createRadialGradient(x, y, 0, x, y, radius);
      grad.addColorStop(0, `rgba(${r},${g},${b},1)`);
      grad.addColorStop(hard, `rgba(${r},${g},${b},1)`);
      grad.addColorStop(1, `rgba(${r},${g},${b},0)`);
      ctx.fillStyle = grad;
    }
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, Math.PI * 2);
    ctx.fill();
    ctx.restore();
  }

  /** A whole-mask edit (invert, clear) as one undoable step. */
  edit(fn) {
    this.pushUndo();
    fn(this.maskCtx);
  }

  invert(ctx) {
    const data = ctx.getImageData(0, 0, this.w, this.h);
    for (let i = 0; i < data.data.length; i += 4) {
      data.data[i] = MASK_RGB[0];
      data.data[i + 1] = MASK_RGB[1];
      data.data[i + 2] = MASK_RGB[2];
      data.data[i + 3] = 255 - data.data[i + 3];
    }
    ctx.putImageData(data, 0, 0);
  }

  pushUndo() {
    this.undoStack.push(this.maskCtx.getImageData(0, 0, this.w, this.h));
    if (this.undoStack.length > UNDO_STEPS) this.undoStack.shift();
  }

  undo() {
    const prev = this.undoStack.pop();
    if (prev) this.maskCtx.putImageData(prev, 0, 0);
  }

  // ---- saving ------------------------------------------------------------------------

  /** The mask as ComfyUI uploads it: a PNG whose alpha is 255 - mask (masked = transparent). */
  maskPng() {
    const src = this.maskCtx.getImageData(0, 0, this.w, this.h).data;
    const out = new ImageData(this.w, this.h);
    for (let i = 3; i < src.length; i += 4) out.data[i] = 255 - src[i];
    const c = Object.assign(document.createElement("canvas"), { width: this.w, height: this.h });
    c.getContext("2d").putImageData(out, 0, 0);
    return new Promise((resolve, reject) => c.toBlob((b) => (b ? resolve(b) : reject(new Error("could not encode the mask"))), "image/png"));
  }

  async save() {
    const app = this.app;
    const node = this.node;
    const name = `clipspace-mask-${Date.now()}.png`;
    let res;
    try {
      res = await app.api.uploadMask(await this.maskPng(), name, this.ref);
    } catch (e) {
      app.toast(`Could not save the mask: ${e.message}`, "error");
      return;
    }
    const path = res.subfolder ? `${res.subfolder}/${res.name}` : res.name;
    const value = res.type && res.type !== "input" ? `${path} [${res.type}]` : path;
    const spec = app.defFor(node).inputs.find((i) => i.name === this.widget);
    if (spec && spec.choices && !spec.choices.includes(value)) spec.choices.push(value);
    app.renderer.images.delete(app.api.viewUrl(inputImageRef(value)));
    app.cmd("Edit mask", () => {
      node.widgets_values[this.widget] = value;
    });
    this.close();
    app.toast(`Mask saved: input/${path}`, "info", 2500);
  }

  onKey(e) {
    e.stopPropagation(); // the canvas's shortcuts stay out of the editor
    const mod = e.ctrlKey || e.metaKey;
    const k = e.key.toLowerCase();
    let handled = true;
    if (k === "escape") this.close();
    else if (mod && k === "z") this.undo();
    else if (mod && k === "s") this.save();
    else if (mod || e.altKey || e.target.tagName === "INPUT") handled = false;
    else if (k === "b") this.setMode("paint");
    else if (k === "e") this.setMode("erase");
    else if (k === "i") this.edit((ctx) => this.invert(ctx));
    else if (k === "[") this.setSize(Number(this.size.input.value) / 1.25);
    else if (k === "]") this.setSize(Number(this.size.input.value) * 1.25);
    else handled = false;
    if (handled) e.preventDefault();
  }
}
