// The user's settings, kept on the server (GET/POST /settings, the user folder's
// comfy.settings.json) under ComfyUI's setting ids where ComfyUI has the same setting, so both
// editors share them; and what each one changes in the editor. installUserFeatures() wires the
// settings, the keyboard shortcuts, the workflow library and the settings dialog into the app.

import { Keybindings, NEW_BINDINGS, UNSET_BINDINGS, registerEditorCommands } from "./keybindings.js";
import { LINK_LINEAR, LINK_SPLINE, LINK_STRAIGHT } from "./links.js";
import { SettingsPanel } from "./settings_panel.js";
import { applyTheme } from "./theme.js";
import { UserData } from "./userdata.js";
import { WorkflowLibrary } from "./workflows.js";

export const LOD_SETTING = "LiteGraph.Canvas.LowQualityRenderingZoomThreshold";

/** What the settings dialog shows, in order. `options` are [value, text]. */
export const SETTINGS = [
  {
    id: "Comfy.ColorPalette", section: "Appearance", label: "Theme", type: "combo", default: "dark",
    options: [["dark", "Dark"], ["light", "Light"]],
  },
  {
    id: "Comfy.LinkRenderMode", section: "Appearance", label: "Link style", type: "combo", default: LINK_SPLINE,
    options: [[LINK_SPLINE, "Spline"], [LINK_LINEAR, "Linear"], [LINK_STRAIGHT, "Straight"]],
  },
  {
    id: LOD_SETTING, section: "Appearance", label: "Simplify nodes below zoom", type: "number", default: 0.45,
    min: 0.1, max: 1, step: 0.05,
    help: "Below this zoom, nodes show only their shape and title (in readable type); widgets fade out just above it.",
  },
  { id: "pysssss.SnapToGrid", section: "Canvas", label: "Always snap to grid", type: "boolean", default: false,
    help: "Moving and resizing nodes snaps to the grid (without this, hold Shift while moving)." },
  { id: "Comfy.SnapToGrid.GridSize", section: "Canvas", label: "Grid size", type: "number", default: 10, min: 1, max: 500, step: 1 },
  {
    id: "Comfy.Execution.PreviewMethod", section: "Execution", label: "Live preview method", type: "combo", default: "auto",
    help: "Sent with each queued prompt (extra_data.preview_method).",
    options: [["auto", "Auto"], ["latent2rgb", "Latent2RGB"], ["taesd", "TAESD"], ["none", "None"], ["default", "Server default (--preview-method)"]],
  },
];

const BY_ID = new Map(SETTINGS.map((s) => [s.id, s]));

/** `value` as the setting accepts it, or its default. */
export function validSetting(def, value) {
  if (value === undefined || value === null) return def.default;
  if (def.type === "boolean") return typeof value === "boolean" ? value : def.default;
  if (def.type === "number") {
    const n = Number(value);
    return Number.isFinite(n) ? Math.min(def.max, Math.max(def.min, n)) : def.default;
  }
  if (def.type === "combo") return def.options.some(([v]) => v === value) ? value : def.default;
  return value;
}

export class SettingsStore {
  constructor(app, userdata) {
    this.app = app;
    this.userdata = userdata;
    this.values = {};
  }

  async load() {
    try {
      const values = await this.userdata.settings();
      this.values = values && typeof values === "object" && !Array.isArray(values) ? values : {};
    } catch (e) {
      this.app.toast(`Could not load the settings from the server: ${e.message}`, "warn");
    }
    this.apply();
  }

  get(id) {
    const def = BY_ID.get(id);
    return def ? validSetting(def, this.values[id]) : this.values[id];
  }

  /** Change a setting here and on the server; resolves false (after a toast) when it could not be saved. */
  async set(id, value) {
    this.values[id] = value;
    this.apply();
    try {
      await this.userdata.saveSetting(id, value);
      return true;
    } catch (e) {
      this.app.toast(`Could not save the setting ${id}: ${e.message}`, "error");
      return false;
    }
  }

  /** Change several settings at once (one request). */
  async setMany(values) {
    Object.assign(this.values, values);
    this.apply();
    try {
      await this.userdata.saveSettings(values);
      return true;
    } catch (e) {
      this.app.toast(`Could not save the settings: ${e.message}`, "error");
      return false;
    }
  }

  /** Put every setting into effect. */
  apply() {
    const app = this.app;
    const r = app.renderer;
    r.colors = applyTheme(this.get("Comfy.ColorPalette"));
    r.linkMode = this.get("Comfy.LinkRenderMode");
    r.lodThreshold = this.get(LOD_SETTING);
    app.snap = { always: this.get("pysssss.SnapToGrid"), size: this.get("Comfy.SnapToGrid.GridSize") };
    app.api.previewMethod = this.get("Comfy.Execution.PreviewMethod");
    if (app.keybindings) app.keybindings.load(this.values[NEW_BINDINGS], this.values[UNSET_BINDINGS]);
    if (app.tabs.length) r.requestRender(); // none before the workspace is restored
  }
}

/** Settings from the server, shortcuts, the workflow library and the settings dialog. */
export async function installUserFeatures(app) {
  app.userdata = new UserData(app.api);
  app.keybindings = new Keybindings(app);
  registerEditorCommands(app, app.keybindings);
  app.prefs = new SettingsStore(app, app.userdata);
  app.workflows = new WorkflowLibrary(app, document.getElementById("workflow-library"), document.getElementById("workflows-toggle"));
  app.settingsPanel = new SettingsPanel(app);
  const settingsButton = document.getElementById("settings-button");
  if (settingsButton) settingsButton.addEventListener("click", () => app.settingsPanel.toggle());
  await app.prefs.load();
}
