// The editor's chrome around the canvas: the top bar's buttons, the ☰ workflow menu, the
// minimap (click or drag to move the view) and the keyboard-shortcut sheet.

import { showMenu } from "./menu.js";
import { defaultGraph } from "./defaults.js";

const SHORTCUTS = [
  ["Double-click, /", "add a node (search)"], ["Drag a link into space", "add a node that fits it"],
  ["Ctrl+Enter", "queue (Shift: to the front)"], ["Ctrl+Z / Ctrl+Y", "undo / redo"],
  ["Ctrl+C / Ctrl+V", "copy / paste (Shift: keep input links)"], ["Ctrl+D, Alt+drag", "duplicate"],
  ["Delete", "remove selected"], ["Ctrl+B / Ctrl+M", "bypass / mute"], ["Ctrl+G", "group selected"],
  ["Ctrl+A", "select all"], ["Ctrl/Shift+drag", "box select"], ["Drag space, Space+drag", "pan"],
  ["Wheel", "zoom"], [".", "fit view"], ["R", "refresh the node list (new model files)"], ["Ctrl+S / Ctrl+O", "save / open"], ["Esc", "close menus, deselect"],
];

const $ = (id) => document.getElementById(id);

export class Toolbar {
  constructor(app) {
    this.app = app;
  }

  bind() {
    const app = this.app;
    $("queue-button").addEventListener("click", (e) => app.queue(e.shiftKey));
    $("interrupt-button").addEventListener("click", () => app.api.interrupt().catch((e) => app.toast(e.message, "error")));
    $("undo-button").addEventListener("click", () => app.undo());
    $("redo-button").addEventListener("click", () => app.redo());
    $("queue-toggle").addEventListener("click", () => app.queuePanel.toggle());
    $("minimap-toggle").addEventListener("click", () => {
      const m = $("minimap");
      m.hidden = !m.hidden;
      app.renderer.resize();
      app.renderer.requestRender();
    });
    $("menu-button").addEventListener("click", (e) => {
      const r = e.currentTarget.getBoundingClientRect();
      showMenu(r.left, r.bottom + 4, this.menuItems());
    });
  }

  /** The ☰ menu, web extensions' entries included (built when it opens). */
  menuItems() {
    const app = this.app;
    return [
      { label: "New workflow", action: () => app.newTab() },
      { label: "Open…", shortcut: "Ctrl+O", action: () => app.openFile() },
      { label: "Save", shortcut: "Ctrl+S", action: () => app.saveFile() },
      { label: "Export (API format)", action: () => app.exportApi() },
      { label: "Export (ComfyUI format)", action: () => app.exportComfy() },
      { separator: true },
      { label: "Load default workflow", action: () => app.loadGraph(defaultGraph(app.defs), "Default workflow") },
      { label: "Clear workflow", action: () => app.cmd("Clear", () => { app.graph.nodes = []; app.graph.links = []; app.graph.groups = []; }) },
      { label: "Fit view", shortcut: ".", action: () => app.fitView() },
      { label: "Refresh node list", action: () => app.refreshDefs().then(() => app.toast("Node list refreshed", "info", 1500)) },
      ...(app.extHost ? app.extHost.menuItems().map((m) => ({ label: m.label, action: () => m.run() })) : []),
      { separator: true },
      { label: app.settings.trackpadPan ? "Wheel: zoom" : "Wheel: pan (trackpad)", action: () => { app.settings.trackpadPan = !app.settings.trackpadPan; } },
      { label: "Keyboard shortcuts", shortcut: "?", action: () => app.showShortcuts() },
      { label: `Weft ${app.config.version || ""}`, disabled: true },
    ];
  }

  bindMinimap() {
    const app = this.app;
    const m = $("minimap");
    const go = (e) => {
      const t = app.renderer.minimapTransform;
      if (!t) return;
      const rect = m.getBoundingClientRect();
      const wx = (e.clientX - rect.left - t.ox) / t.s;
      const wy = (e.clientY - rect.top - t.oy) / t.s;
      const r = app.renderer;
      const ds = app.graph.extra.ds;
      ds.offset = [r.width / ds.scale / 2 - wx, r.height / ds.scale / 2 - wy];
      app.viewChanged();
    };
    let down = false;
    m.addEventListener("pointerdown", (e) => {
      down = true;
      m.setPointerCapture(e.pointerId);
      go(e);
    });
    m.addEventListener("pointermove", (e) => down && go(e));
    m.addEventListener("pointerup", () => {
      down = false;
    });
  }

  update() {
    const history = this.app.history;
    $("undo-button").disabled = !history.canUndo;
    $("redo-button").disabled = !history.canRedo;
  }

  /** Show the shortcut sheet, or hide it when it is open. */
  showShortcuts() {
    let panel = $("shortcuts");
    if (!panel) {
      panel = document.createElement("div");
      panel.id = "shortcuts";
      panel.addEventListener("click", () => panel.remove());
      const table = document.createElement("table");
      for (const [k, v] of SHORTCUTS) {
        const tr = table.insertRow();
        tr.insertCell().textContent = k;
        tr.insertCell().textContent = v;
      }
      panel.appendChild(table);
      document.body.appendChild(panel);
    } else panel.remove();
  }
}
