// Keyboard shortcuts that can be changed: commands with ComfyUI's ids and default keys, the
// user's changes kept as ComfyUI keeps them (settings "Comfy.Keybinding.NewBindings" and
// "Comfy.Keybinding.UnsetBindings": lists of {commandId, combo: {key, ctrl, alt, shift}}),
// and the dispatch from key presses on the page. Keys that are not commands (copy, paste,
// undo, Delete, Space, /, ?, Escape) stay fixed in interaction.js.

import { MODE_BYPASS, MODE_MUTED, getNode } from "./state.js";

export const NEW_BINDINGS = "Comfy.Keybinding.NewBindings";
export const UNSET_BINDINGS = "Comfy.Keybinding.UnsetBindings";

/** ComfyUI's core bindings that Weft has commands for (Backspace does not clear the workflow here: it deletes). */
export const DEFAULT_BINDINGS = [
  { commandId: "Comfy.QueuePrompt", combo: { key: "Enter", ctrl: true } },
  { commandId: "Comfy.QueuePromptFront", combo: { key: "Enter", ctrl: true, shift: true } },
  { commandId: "Comfy.Interrupt", combo: { key: "Enter", ctrl: true, alt: true } },
  { commandId: "Comfy.RefreshNodeDefinitions", combo: { key: "r" } },
  { commandId: "Workspace.ToggleSidebarTab.queue", combo: { key: "q" } },
  { commandId: "Workspace.ToggleSidebarTab.workflows", combo: { key: "w" } },
  { commandId: "Workspace.ToggleSidebarTab.node-library", combo: { key: "n" } },
  { commandId: "Workspace.ToggleSidebarTab.model-library", combo: { key: "m" } },
  { commandId: "Comfy.SaveWorkflow", combo: { key: "s", ctrl: true } },
  { commandId: "Comfy.OpenWorkflow", combo: { key: "o", ctrl: true } },
  { commandId: "Comfy.Graph.GroupSelectedNodes", combo: { key: "g", ctrl: true } },
  { commandId: "Comfy.ShowSettingsDialog", combo: { key: ",", ctrl: true } },
  { commandId: "Comfy.Canvas.ZoomIn", combo: { key: "=", alt: true } },
  { commandId: "Comfy.Canvas.ZoomIn", combo: { key: "+", alt: true, shift: true } },
  { commandId: "Comfy.Canvas.ZoomOut", combo: { key: "-", alt: true } },
  { commandId: "Comfy.Canvas.FitView", combo: { key: "." } },
  { commandId: "Comfy.Canvas.ToggleSelectedNodes.Collapse", combo: { key: "c", alt: true } },
  { commandId: "Comfy.Canvas.ToggleSelectedNodes.Bypass", combo: { key: "b", ctrl: true } },
  { commandId: "Comfy.Canvas.ToggleSelectedNodes.Mute", combo: { key: "m", ctrl: true } },
];

const MODIFIER_KEYS = new Set(["Control", "Alt", "Shift", "Meta", "AltGraph", "CapsLock", "OS"]);

/** The combo of a key press: letters and digits by their physical key (Alt+C on a Mac types "ç"). */
export function comboFromEvent(e) {
  if (MODIFIER_KEYS.has(e.key)) return null;
  let key = e.key;
  if (/^Key[A-Z]$/.test(e.code || "")) key = e.code.slice(3).toLowerCase();
  else if (/^Digit[0-9]$/.test(e.code || "") && !e.shiftKey) key = e.code.slice(5);
  else if (key.length === 1) key = key.toLowerCase();
  return { key, ctrl: e.ctrlKey || e.metaKey, alt: e.altKey, shift: e.shiftKey };
}

/** One text per combo, e.g. "Ctrl+Alt+Enter": how combos are compared and shown. */
export function comboText(combo) {
  if (!combo || !combo.key) return "";
  const key = combo.key.length === 1 ? combo.key.toUpperCase() : combo.key;
  return `${combo.ctrl || combo.meta ? "Ctrl+" : ""}${combo.alt ? "Alt+" : ""}${combo.shift ? "Shift+" : ""}${key === " " ? "Space" : key}`;
}

function same(a, b) {
  return a.commandId === b.commandId && comboText(a.combo) === comboText(b.combo);
}

function cleanBinding(b) {
  const c = b.combo;
  const combo = { key: c.key };
  for (const m of ["ctrl", "alt", "shift"]) if (c[m]) combo[m] = true;
  return { commandId: b.commandId, combo };
}

export class Keybindings {
  constructor(app) {
    this.app = app;
    this.commands = new Map();
    this.defaults = DEFAULT_BINDINGS.map(cleanBinding);
    this.newBindings = [];
    this.unsetBindings = [];
    this.rebuild();
  }

  /** Add a command (extensions and panels may); `combos` are its default keys. */
  register(id, label, run, combos = []) {
    this.commands.set(id, { id, label, run });
    for (const combo of combos) this.defaults.push(cleanBinding({ commandId: id, combo }));
    this.rebuild();
  }

  /** Take the user's changes from the settings. */
  load(newBindings, unsetBindings) {
    const valid = (b) => b && typeof b.commandId === "string" && b.combo && typeof b.combo.key === "string" && b.combo.key;
    this.newBindings = (Array.isArray(newBindings) ? newBindings : []).filter(valid).map(cleanBinding);
    this.unsetBindings = (Array.isArray(unsetBindings) ? unsetBindings : []).filter(valid).map(cleanBinding);
    this.rebuild();
  }

  /** The bindings in force: the defaults the user did not unset, then the user's (which win). */
  get bindings() {
    const kept = this.defaults.filter((d) => !this.unsetBindings.some((u) => same(u, d)));
    return [...kept, ...this.newBindings];
  }

  rebuild() {
    this.byCombo = new Map();
    for (const b of this.bindings) this.byCombo.set(comboText(b.combo), b.commandId);
  }

  combosOf(id) {
    return this.bindings.filter((b) => b.commandId === id).map((b) => b.combo);
  }

  commandFor(combo) {
    return this.byCombo.get(comboText(combo)) || null;
  }

  isDefault(id) {
    const now = this.combosOf(id).map(comboText).sort().join();
    return now === this.defaults.filter((d) => d.commandId === id).map((d) => comboText(d.combo)).sort().join();
  }

  /** Run the command bound to a key press; true when there was one. */
  handle(e) {
    const combo = comboFromEvent(e);
    const id = combo && this.commandFor(combo);
    const command = id && this.commands.get(id);
    if (!command) return false;
    command.run();
    return true;
  }

  /** Bind `combo` to command `id` alone, taking it from whichever command had it; the
   * changed lists to save. */
  assign(id, combo) {
    const taken = this.commandFor(combo);
    const text = comboText(combo);
    for (const b of this.bindings) {
      if (b.commandId === id || (taken && b.commandId === taken && comboText(b.combo) === text)) this.unbind(b);
    }
    this.newBindings.push(cleanBinding({ commandId: id, combo }));
    this.rebuild();
    return this.lists();
  }

  /** No key for `id`. */
  clear(id) {
    for (const b of this.bindings) if (b.commandId === id) this.unbind(b);
    this.rebuild();
    return this.lists();
  }

  /** Back to the default keys of `id`. */
  reset(id) {
    this.newBindings = this.newBindings.filter((b) => b.commandId !== id);
    this.unsetBindings = this.unsetBindings.filter((b) => b.commandId !== id);
    this.rebuild();
    return this.lists();
  }

  unbind(binding) {
    const isNew = this.newBindings.findIndex((b) => same(b, binding));
    if (isNew >= 0) this.newBindings.splice(isNew, 1);
    else if (this.defaults.some((d) => same(d, binding)) && !this.unsetBindings.some((u) => same(u, binding))) {
      this.unsetBindings.push(cleanBinding(binding));
    }
  }

  lists() {
    return { [NEW_BINDINGS]: this.newBindings.map(cleanBinding), [UNSET_BINDINGS]: this.unsetBindings.map(cleanBinding) };
  }
}

/** Toggle the collapse of each selected node, as ComfyUI's Alt+C does. */
function toggleCollapse(app) {
  const nodes = [...app.selection].map((id) => getNode(app.graph, id)).filter(Boolean);
  if (!nodes.length) return;
  app.cmd(nodes.length > 1 ? "Collapse nodes" : "Collapse node", () => {
    for (const n of nodes) {
      if (n.collapsed) delete n.collapsed;
      else n.collapsed = true;
    }
  });
}

function zoom(app, factor) {
  const r = app.renderer;
  app.interaction.zoomAt(r.width / 2, r.height / 2, r.ds.scale * factor);
  app.viewChanged();
}

function clickButton(id) {
  const el = document.getElementById(id);
  if (el) el.click();
}

/** The commands of the editor itself, by ComfyUI's ids. */
export function registerEditorCommands(app, keys) {
  const toast = (text) => app.toast(text, "info", 1500);
  const commands = [
    ["Comfy.QueuePrompt", "Queue the workflow", () => app.queue(false)],
    ["Comfy.QueuePromptFront", "Queue the workflow at the front", () => app.queue(true)],
    ["Comfy.Interrupt", "Interrupt the running prompt", () => app.api.interrupt().catch((e) => app.toast(e.message, "error"))],
    ["Comfy.RefreshNodeDefinitions", "Refresh the node list (new model files)", () => app.refreshDefs().then(() => toast("Node list refreshed (new models and files)"))],
    ["Workspace.ToggleSidebarTab.queue", "Show or hide the queue", () => app.queuePanel.toggle()],
    ["Workspace.ToggleSidebarTab.workflows", "Show or hide the workflow library", () => clickButton("workflows-toggle")],
    ["Workspace.ToggleSidebarTab.node-library", "Show or hide the node library", () => clickButton("library-toggle")],
    ["Workspace.ToggleSidebarTab.model-library", "Show or hide the model browser", () => clickButton("models-toggle")],
    ["Comfy.SaveWorkflow", "Save the workflow", () => app.workflows.save()],
    ["Comfy.SaveWorkflowAs", "Save the workflow as…", () => app.workflows.save(true)],
    ["Comfy.OpenWorkflow", "Open a workflow file", () => app.openFile()],
    ["Comfy.NewBlankWorkflow", "New blank workflow", () => app.newTab()],
    ["Comfy.ExportWorkflow", "Export (ComfyUI format)", () => app.exportComfy()],
    ["Comfy.ExportWorkflowAPI", "Export (API format)", () => app.exportApi()],
    ["Comfy.Graph.GroupSelectedNodes", "Group the selected nodes", () => app.groupSelection()],
    ["Comfy.ShowSettingsDialog", "Settings", () => app.settingsPanel.toggle()],
    ["Comfy.Canvas.ZoomIn", "Zoom in", () => zoom(app, 1.1)],
    ["Comfy.Canvas.ZoomOut", "Zoom out", () => zoom(app, 1 / 1.1)],
    ["Comfy.Canvas.FitView", "Fit the view to the workflow", () => app.fitView()],
    ["Comfy.Canvas.ToggleSelectedNodes.Collapse", "Collapse or expand the selected nodes", () => toggleCollapse(app)],
    ["Comfy.Canvas.ToggleSelectedNodes.Bypass", "Bypass the selected nodes", () => app.toggleMode(MODE_BYPASS)],
    ["Comfy.Canvas.ToggleSelectedNodes.Mute", "Mute the selected nodes", () => app.toggleMode(MODE_MUTED)],
  ];
  for (const [id, label, run] of commands) keys.register(id, label, run);
}
