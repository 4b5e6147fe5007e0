// The editor's chrome around the canvas: the top bar's buttons, the ☰ workflow menu, the
// minimap (click or drag to move the view) and the keyboard-shortcut sheet.

import { showMenu } from "./menu.js";
import { defaultGraph } from "./defaults.js";
import { comboText } from "./keybindings.js";

const SHORTCUTS = [
  ["Double-click, /", "add a node (search)"], ["Drag a link into space", "add a node that fits it"],
  ["Ctrl+Z / Ctrl+Y", "undo / redo"],
  ["Ctrl+C / Ctrl+V", "copy / paste (Shift: keep input links)"], ["Ctrl+D, Alt+drag", "duplicate"],
  ["Delete", "remove selected"],
  ["Ctrl+A", "select all"], ["Ctrl/Shift+drag", "box select"], ["Drag space, Space+drag", "pan"],
  ["Wheel", "zoom"], ["Esc", "close dialogs, menus and the search; then deselect"],
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
      { label: "Save", shortcut: "Ctrl+S", action: () => app.workflows.save() },
      { label: "Save as…", action: () => app.workflows.save(true) },
      { label: "Workflow library", shortcut: "W", action: () => document.getElementById("workflows-toggle").click() },
      { label: "Download (Weft format)", action: () => app.saveFile() },
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
      { label: "Settings…", shortcut: "Ctrl+,", action: () => app.settingsPanel.toggle() },
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
      // the commands' keys as they are now (keybindings.js; changed in Settings)
      const keys = this.app.keybindings;
      const commands = keys ? [...keys.commands.values()].map((c) => [keys.combosOf(c.id).map(comboText).join(", "), c.label]).filter(([k]) => k) : [];
      for (const [k, v] of [...commands, ...SHORTCUTS]) {
        const tr = table.insertRow();
        tr.insertCell().textContent = k;
        tr.insertCell().textContent = v;
      }
      panel.appendChild(table);
      document.body.appendChild(panel);
    } else panel.remove();
  }
}
