// Overlays: the modal dialogs (ask for text, confirm, a form of one's own) and what Escape
// closes. Every overlay that floats over the canvas registers a closer while it is open;
// closeOverlays() (Escape on the canvas) closes them all, with the menus, the node search and
// the shortcut sheet. Dialogs also close on Escape from their own inputs.

import { closeComboPicker } from "./combo_picker.js";
import { closeMenus } from "./menu.js";

const closers = new Set();

/** Register `close` while an overlay is open; returns the function that unregisters it. */
export function registerOverlay(close) {
  closers.add(close);
  return () => closers.delete(close);
}

/** Close every open overlay; true when at least one was open. */
export function closeOverlays(app) {
  let closed = closers.size > 0 || !!document.querySelector(".menu, .combo-picker");
  closeMenus();
  closeComboPicker();
  const missing = document.querySelector("#missing-dialog .close"); // missing.js
  if (missing) {
    missing.click();
    closed = true;
  }
  for (const close of [...closers]) close();
  closers.clear();
  const sheet = document.getElementById("shortcuts");
  if (sheet) {
    sheet.remove();
    closed = true;
  }
  if (app && app.search && app.search.el && !app.search.el.hidden) {
    app.search.close();
    closed = true;
  }
  for (const tip of document.querySelectorAll(".tooltip")) tip.hidden = true;
  return closed;
}

/**
 * A modal dialog. `build(body, dialog)` fills the body; buttons are [{label, value, primary,
 * danger}]. Resolves with the clicked button's value (the primary one on Enter), or null when
 * cancelled (Escape, the backdrop, ×). `validate(value)` may return an error text that keeps it
 * open. The dialog element gets `id` and the class `className`.
 */
export function showDialog({ title, build = null, buttons = [], validate = null, id = "", className = "" }) {
  return new Promise((resolve) => {
    const backdrop = document.createElement("div");
    backdrop.className = "weft-backdrop";
    const dialog = document.createElement("div");
    dialog.className = `weft-dialog ${className}`.trim();
    if (id) dialog.id = id;
    dialog.setAttribute("role", "dialog");
    dialog.setAttribute("aria-modal", "true");
    const head = document.createElement("div");
    head.className = "weft-dialog-head";
    const h = document.createElement("h2");
    h.textContent = title;
    h.id = `dialog-title-${Math.random().toString(36).slice(2, 8)}`;
    dialog.setAttribute("aria-labelledby", h.id);
    const x = button("×", "close");
    x.title = "Close (Esc)";
    head.append(h, x);
    const body = document.createElement("div");
    body.className = "weft-dialog-body";
    const error = document.createElement("div");
    error.className = "weft-dialog-error";
    error.setAttribute("role", "alert");
    error.hidden = true;
    const foot = document.createElement("div");
    foot.className = "weft-dialog-buttons";
    dialog.append(head, body, error, foot);
    backdrop.appendChild(dialog);
    const previousFocus = document.activeElement;
    let unregister = null;
    const finish = (value) => {
      if (!backdrop.isConnected) return;
      backdrop.remove();
      if (unregister) unregister();
      if (previousFocus && previousFocus.focus) previousFocus.focus({ preventScroll: true });
      resolve(value);
    };
    const submit = async (value) => {
      const problem = validate ? await validate(value) : null;
      if (problem) {
        error.textContent = problem;
        error.hidden = false;
        return;
      }
      finish(value);
    };
    const primary = buttons.find((b) => b.primary);
    for (const b of buttons) {
      const el = button(b.label, b.primary ? "primary" : b.danger ? "danger" : "");
      el.dataset.value = String(b.value);
      el.addEventListener("click", () => (b.value === null ? finish(null) : submit(b.value)));
      foot.appendChild(el);
    }
    x.addEventListener("click", () => finish(null));
    backdrop.addEventListener("pointerdown", (e) => {
      if (e.target === backdrop) finish(null);
    });
    dialog.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        finish(null);
        if (!closers.size) closeOverlays(null); // the last dialog: Escape closes every overlay
      } else if (e.key === "Enter" && primary && e.target.tagName !== "TEXTAREA" && e.target.tagName !== "BUTTON") {
        e.preventDefault();
        submit(primary.value);
      }
      e.stopPropagation(); // the canvas's shortcuts stay out of the dialog
    });
    if (build) build(body, dialog, { setError: (t) => { error.textContent = t || ""; error.hidden = !t; } });
    document.body.appendChild(backdrop);
    unregister = registerOverlay(() => finish(null));
    const first = body.querySelector("input, select, textarea, button") || foot.querySelector("button.primary") || foot.querySelector("button") || x;
    first.focus();
    if (first.select && first.tagName === "INPUT") first.select();
  });
}

function button(label, className) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (className) b.className = className;
  return b;
}

/** Ask for one line of text; resolves with it (trimmed) or null. */
export async function askText({ title, label, value = "", confirmLabel = "OK", validate = null, id = "" }) {
  let input = null;
  const ok = await showDialog({
    title,
    id,
    build: (body) => {
      const l = document.createElement("label");
      l.className = "weft-field";
      l.textContent = label;
      input = document.createElement("input");
      input.type = "text";
      input.value = value;
      input.spellcheck = false;
      l.appendChild(input);
      body.appendChild(l);
    },
    buttons: [{ label: "Cancel", value: null }, { label: confirmLabel, value: true, primary: true }],
    validate: validate ? () => validate(input.value.trim()) : null,
  });
  return ok ? input.value.trim() : null;
}

/** Ask yes or no; resolves true only when confirmed. */
export async function confirmDialog({ title, message, confirmLabel = "OK", danger = false, id = "" }) {
  const ok = await showDialog({
    title,
    id,
    build: (body) => {
      const p = document.createElement("p");
      p.textContent = message;
      body.appendChild(p);
    },
    buttons: [{ label: "Cancel", value: null }, { label: confirmLabel, value: true, primary: !danger, danger }],
  });
  return ok === true;
}
