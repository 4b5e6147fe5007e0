// The width a new node needs: its title, socket labels, widget labels and values, measured in
// the fonts paint.js draws them with, so nothing shows cut off ("…") when the node appears.
// Saved and loaded nodes keep the size they were saved with.

import { formatNumber } from "./layout.js";

const MAX_W = 560; // a new node never starts wider; longer values are cut off beyond it
const WIDGET_FONT = "12px system-ui, sans-serif";
const TITLE_FONT = "14px system-ui, sans-serif";
const PAD = 10; // layout.js: widgets are inset by PAD on each side
const SLACK = 6; // a few pixels more than the text, as paint.js cuts at the exact width
const RANDOM_SEED = "0000000000000000"; // what "randomize" writes: up to 16 digits
const CONTROL_LABEL = "control after generate";
const CONTROL_VALUES = ["randomize", "increment", "decrement", "fixed"];

/** The width (world units) that shows every label and value of `node` uncut, at least `min`. */
export function fitWidth(ctx, node, def, lay, min) {
  ctx.save();
  const measure = (font, text) => {
    ctx.font = font;
    return ctx.measureText(String(text ?? "")).width;
  };
  const text = (t) => measure(WIDGET_FONT, t);
  // title: drawn from x + 26, cut at w - 40
  let w = Math.max(min, measure(TITLE_FONT, node.title || (def ? def.display_name : node.type)) + 40 + SLACK);
  // sockets: each label gets half the width less 16
  const rows = Math.max(node.inputs.length, node.outputs.length);
  for (let i = 0; i < rows; i++) {
    const a = node.inputs[i] ? text(node.inputs[i].label || node.inputs[i].name) : 0;
    const b = node.outputs[i] ? text(node.outputs[i].label || node.outputs[i].name) : 0;
    w = Math.max(w, 2 * (Math.max(a, b) + 16 + SLACK));
  }
  for (const wd of lay.widgets) w = Math.max(w, widgetWidth(wd, node, text) + 2 * PAD);
  ctx.restore();
  return Math.ceil(Math.min(MAX_W, w));
}

/** The width one widget needs for its label and value, by paint.js's rules for its kind. */
function widgetWidth(wd, node, text) {
  const opts = wd.spec.opts || {};
  const label = wd.spec.label || opts.label || wd.name;
  const value = node.widgets_values[wd.kind === "control" ? wd.target : wd.name];
  switch (wd.kind) {
    case "number":
    case "combo":
    case "control": {
      // drawStepper: the label gets up to half, the value what is left between the arrows
      const lab = text(wd.kind === "control" ? CONTROL_LABEL : label) + SLACK;
      const val = Math.max(...stepperValues(wd, node, value).map(text)) + SLACK;
      return Math.max(2 * lab, lab + val + 50);
    }
    case "toggle": {
      const side = Math.max(text(opts.label_on || ""), text(opts.label_off || ""));
      return text(label) + SLACK + 70 + (side ? side + 8 : 0);
    }
    case "text": {
      // drawTextValue: the label gets up to 45 %, the value the rest less 30
      const lab = text(label) + SLACK;
      return Math.max(lab / 0.45, lab + text(value) + SLACK + 30);
    }
    case "upload":
      return text("choose file to upload") + 24;
    default:
      return 0; // multiline text wraps; extensions' widgets size themselves
  }
}

/** The values a stepper shows now, and for a seed the longest that randomize can give it. */
function stepperValues(wd, node, value) {
  if (wd.kind === "control") return CONTROL_VALUES;
  if (wd.kind === "combo") return [value ?? ""];
  const shown = [formatNumber(value, wd.spec)];
  if (node.properties && node.properties.control && wd.name in node.properties.control) shown.push(RANDOM_SEED);
  return shown;
}
