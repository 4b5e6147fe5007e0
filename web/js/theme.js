// Themes: the page's colours are CSS variables (web/css/workspace.css, :root[data-theme]);
// the canvas reads its own from the same variables, so one setting switches both.

/** Canvas colour name -> [CSS variable, the dark theme's value when the variable is missing]. */
const CANVAS_VARS = {
  canvasBg: ["--canvas-bg", "#1c1d21"],
  grid: ["--canvas-grid", "rgba(255,255,255,0.045)"],
  nodeBg: ["--node-bg", "#2e3036"],
  nodeTitleBg: ["--node-title-bg", "#23252a"],
  outputTitleBg: ["--node-output-title-bg", "#2c4a3a"],
  nodeOutline: ["--node-outline", "#0f0f12"],
  nodeSelected: ["--node-selected", "#ffffff"],
  nodeTitle: ["--node-title", "#dcdcdc"],
  nodeLabel: ["--node-label", "#b8bcc4"],
  widgetBg: ["--widget-bg", "#222327"],
  widgetBgActive: ["--widget-bg-active", "#34363d"],
  widgetBorder: ["--widget-border", "#45474e"],
  widgetText: ["--widget-text", "#e6e6e6"],
  widgetLabel: ["--widget-label", "#9aa0a8"],
  widgetMuted: ["--widget-muted", "#8d929b"],
  textBg: ["--text-output-bg", "#17181b"],
  groupTitle: ["--group-title", "#e8e8e8"],
};

export const THEMES = ["dark", "light"];

/** Switch the page to `name` and return the canvas colours it defines. */
export function applyTheme(name) {
  const theme = THEMES.includes(name) ? name : "dark";
  document.documentElement.dataset.theme = theme;
  return readPalette();
}

export function readPalette() {
  const style = getComputedStyle(document.documentElement);
  const palette = {};
  for (const [key, [variable, fallback]] of Object.entries(CANVAS_VARS)) {
    palette[key] = style.getPropertyValue(variable).trim() || fallback;
  }
  return palette;
}
