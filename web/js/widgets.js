// Editing values on the canvas: drag or step numbers, toggle, pick from combos, type text
// in an editor laid over the widget, rename nodes and groups in place. Numbers are clamped
// and rounded to their input's range and step; typed numbers may be simple arithmetic.

import { CONTROL_MODES } from "./serialize.js";
import { TITLE_H, formatNumber } from "./layout.js";
import { PICKER_MIN_CHOICES, openComboPicker } from "./combo_picker.js";
import { showMenu } from "./menu.js";
import { comboHas, missingNote } from "./missing.js";
import { getNode } from "./state.js";

export class WidgetEditing {
  constructor(interaction) {
    this.ia = interaction;
  }

  get app() {
    return this.ia.app;
  }

  get r() {
    return this.ia.r;
  }

  get canvas() {
    return this.ia.canvas;
  }

  widgetDown(node, wd, lx) {
    const app = this.app;
    const [sx] = this.ia.mouse;
    const edge = lx < 20 ? -1 : lx > wd.w - 20 ? 1 : 0;
    switch (wd.kind) {
      case "number":
        app.history.begin(`Set ${wd.name}`);
        this.ia.activeWidget = { node: node.id, name: wd.name };
        this.ia.drag = { kind: "number", node: node.id, widget: wd, startX: sx, orig: Number(node.widgets_values[wd.name]) || 0, lx, moved: false };
        break;
      case "toggle":
        app.cmd(`Set ${wd.name}`, () => {
          node.widgets_values[wd.name] = !node.widgets_values[wd.name];
        });
        break;
      case "combo": {
        const choices = wd.spec.choices || [];
        if (edge && choices.length) {
          const i = choices.indexOf(node.widgets_values[wd.name]);
          const next = choices[Math.min(choices.length - 1, Math.max(0, (i < 0 ? 0 : i) + edge))];
          app.cmd(`Set ${wd.name}`, () => {
            node.widgets_values[wd.name] = next;
          });
        } else this.openCombo(node, wd, choices, node.widgets_values[wd.name], (v) => {
          app.cmd(`Set ${wd.name}`, () => {
            node.widgets_values[wd.name] = v;
          });
        });
        break;
      }
      case "control": {
        const cur = (node.properties.control || {})[wd.target];
        const set = (v) => app.cmd("Set control after generate", () => {
          node.properties.control = { ...(node.properties.control || {}), [wd.target]: v };
        });
        if (edge) set(CONTROL_MODES[(CONTROL_MODES.indexOf(cur) + edge + CONTROL_MODES.length) % CONTROL_MODES.length]);
        else this.openCombo(node, wd, CONTROL_MODES, cur, set);
        break;
      }
      case "upload":
        // the file dialog opens on the click that follows (a dependable user activation)
        this.ia.pendingUpload = { node, name: wd.target };
        break;
      case "text":
      case "multiline":
        this.editWidgetText(node, wd);
        break;
      default:
        break;
    }
    this.r.requestRender();
  }

  /** Dragging a number sideways steps it; false while the pointer has not really moved. */
  dragNumber(d, sx) {
    const dx = sx - d.startX;
    if (!d.moved && Math.abs(dx) < 3) return false;
    d.moved = true;
    const node = getNode(this.ia.graph, d.node);
    const spec = d.widget.spec;
    const step = numberStep(spec);
    const steps = Math.round(dx / (spec.type === "INT" ? 6 : 4));
    node.widgets_values[d.widget.name] = clampNumber(d.orig + steps * step, spec);
    return true;
  }

  /** A click on a number without a drag: its arrows step it, its middle opens the editor. */
  releaseNumber(d) {
    const app = this.app;
    const node = getNode(this.ia.graph, d.node);
    if (!d.moved && node) {
      const x = d.lx;
      const wd = d.widget;
      if (x < 20 || x > wd.w - 20) {
        node.widgets_values[wd.name] = clampNumber(d.orig + (x < 20 ? -1 : 1) * numberStep(wd.spec), wd.spec);
        app.history.commit();
        app.changed();
      } else {
        app.history.commit();
        this.editWidgetText(node, wd);
      }
    } else {
      app.history.commit();
      app.changed();
    }
    this.ia.activeWidget = null;
  }

  widgetScreenRect(node, wd) {
    const rect = this.canvas.getBoundingClientRect();
    const [x, y] = this.r.toScreen(node.pos[0] + wd.x, node.pos[1] + wd.y);
    const s = this.r.ds.scale;
    return { left: rect.left + x, top: rect.top + y, width: wd.w * s, height: wd.h * s };
  }

  editWidgetText(node, wd) {
    const app = this.app;
    const r = this.widgetScreenRect(node, wd);
    const multiline = wd.kind === "multiline";
    const el = document.createElement(multiline ? "textarea" : "input");
    el.className = "widget-editor";
    el.dataset.node = String(node.id);
    el.dataset.widget = wd.name;
    const value = node.widgets_values[wd.name];
    el.value = wd.kind === "number" ? formatNumber(value, wd.spec) : String(value ?? "");
    el.spellcheck = false;
    const scale = Math.max(1, this.r.ds.scale);
    Object.assign(el.style, {
      left: `${r.left}px`, top: `${r.top}px`, width: `${Math.max(r.width, 160)}px`,
      height: multiline ? `${Math.max(r.height, 120)}px` : `${Math.max(r.height, 26)}px`, fontSize: `${Math.round(12 * Math.min(scale, 1.6))}px`,
    });
    document.body.appendChild(el);
    el.focus();
    el.select && !multiline && el.select();
    this.ia.activeWidget = { node: node.id, name: wd.name };
    let closed = false;
    const finish = (save) => {
      if (closed) return;
      closed = true;
      const v = el.value;
      el.remove();
      this.ia.activeWidget = null;
      if (save) {
        let nv = v;
        if (wd.kind === "number") {
          nv = evalNumber(v);
          if (nv === null) {
            app.toast(`"${v}" is not a number`, "warn");
            return;
          }
          nv = clampNumber(nv, wd.spec);
        }
        app.cmd(`Set ${wd.name}`, () => {
          node.widgets_values[wd.name] = nv;
        });
      }
      this.r.requestRender();
    };
    el.addEventListener("keydown", (ev) => {
      ev.stopPropagation();
      if (ev.key === "Escape") finish(false);
      else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        // as in ComfyUI: Ctrl+Enter queues, also from a prompt being typed
        ev.preventDefault();
        finish(true);
        app.queue(ev.shiftKey);
      } else if (ev.key === "Enter" && !multiline) {
        ev.preventDefault();
        finish(true);
      }
    });
    el.addEventListener("blur", () => finish(true));
    app.editorClosers.add(() => finish(true));
  }

  openCombo(node, wd, choices, current, onPick) {
    const r = this.widgetScreenRect(node, wd);
    if (wd.kind === "combo" && choices.length > PICKER_MIN_CHOICES) {
      const missing = comboHas(wd.spec, current) ? "" : missingNote(node, wd.spec, current);
      openComboPicker(r, choices, current, onPick, { missing });
      return;
    }
    const items = choices.map((c) => ({ label: String(c), value: c, checked: c === current }));
    showMenu(r.left, r.top + r.height, items.map((it) => ({ label: it.label, checked: it.checked, action: () => onPick(it.value) })), { filter: choices.length > 8, className: "combo-menu", minWidth: r.width });
  }

  renameNode(node) {
    const app = this.app;
    const def = app.defFor(node);
    const [sx, sy] = this.r.toScreen(node.pos[0], node.pos[1] - TITLE_H);
    const rect = this.canvas.getBoundingClientRect();
    this.inlineInput(rect.left + sx + 24, rect.top + sy + 3, node.title || (def ? def.display_name : node.type), (v) => {
      app.cmd("Rename node", () => {
        if (v && (!def || v !== def.display_name)) node.title = v;
        else delete node.title;
      });
    });
  }

  renameGroup(group) {
    const app = this.app;
    const [sx, sy] = this.r.toScreen(group.bounding[0], group.bounding[1]);
    const rect = this.canvas.getBoundingClientRect();
    this.inlineInput(rect.left + sx + 6, rect.top + sy + 4, group.title, (v) => app.cmd("Rename group", () => {
      group.title = v || "Group";
    }));
  }

  inlineInput(x, y, value, onDone) {
    const el = document.createElement("input");
    el.className = "widget-editor";
    el.value = value;
    Object.assign(el.style, { left: `${x}px`, top: `${y}px`, width: "240px", height: "26px" });
    document.body.appendChild(el);
    el.focus();
    el.select();
    let closed = false;
    const finish = (save) => {
      if (closed) return;
      closed = true;
      el.remove();
      if (save) onDone(el.value.trim());
    };
    el.addEventListener("keydown", (ev) => {
      ev.stopPropagation();
      if (ev.key === "Enter") finish(true);
      if (ev.key === "Escape") finish(false);
    });
    el.addEventListener("blur", () => finish(true));
    this.app.editorClosers.add(() => finish(true));
  }
}

function numberStep(spec) {
  const o = spec.opts || {};
  if (spec.type === "INT") return Math.max(1, Math.round(o.step || 1));
  return o.step || 0.01;
}

function clampNumber(v, spec) {
  const o = spec.opts || {};
  if (!Number.isFinite(v)) v = 0;
  if (Number.isFinite(o.min)) v = Math.max(o.min, v);
  if (Number.isFinite(o.max)) v = Math.min(o.max, v);
  if (spec.type === "INT") return Math.round(v);
  const r = typeof o.round === "number" && o.round > 0 ? o.round : o.step || 0.01;
  const decimals = Math.min(10, Math.max(0, Math.ceil(-Math.log10(r) - 1e-9)));
  return Number((Math.round(v / r) * r).toFixed(decimals));
}

/** Parse a typed number; simple arithmetic (+ - * / parentheses) is allowed. */
function evalNumber(text) {
  const s = String(text).trim();
  if (!s) return null;
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s)) return Number(s);
  const tokens = s.match(/\d+\.?\d*(?:e[-+]?\d+)?|\.\d+|[-+*/()]/gi);
  if (!tokens || tokens.join("") !== s.replace(/\s+/g, "")) return null;
  let i = 0;
  const expr = () => {
    let v = term();
    while (tokens[i] === "+" || tokens[i] === "-") v = tokens[i++] === "+" ? v + term() : v - term();
    return v;
  };
  const term = () => {
    let v = factor();
    while (tokens[i] === "*" || tokens[i] === "/") v = tokens[i++] === "*" ? v * factor() : v / factor();
    return v;
  };
  const factor = () => {
    const t = tokens[i++];
    if (t === "-") return -factor();
    if (t === "+") return factor();
    if (t === "(") {
      const v = expr();
      i++;
      return v;
    }
    return Number(t);
  };
  try {
    const v = expr();
    return i === tokens.length && Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}
