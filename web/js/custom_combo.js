// ComfyUI's Custom Combo on the canvas: a combo ("choice") whose options the user types into
// text widgets under it, named as ComfyUI's frontend names them ("option0", "option1", ...).
// One empty widget always follows the last option, so the list grows as it is typed; clearing
// an option removes it (the later ones move up, one empty widget stays last). The combo lists
// the options typed: when the chosen one is edited the choice follows the edit, when it is
// removed the choice moves to the option that took its place (else the one before it, else
// ""), and a first option typed becomes the choice, as in ComfyUI. The server only runs the
// choice; the option widgets travel like any widget (prompt inputs, positional values after the
// choice in ComfyUI's files), as ComfyUI's frontend sends and saves them. ComfyUI's frontend
// knows the node by its class name; so does this. Pure value logic: dynamic.js applies it to
// the graph (nodeDef expands it, settleGraph settles it inside each edit, so one undo takes
// an option and what it changed back).

export const CUSTOM_COMBO = "CustomCombo";

/** Mark CustomCombo's `choice` as a combo of typed options; whether the definition has one. */
export function markTypedCombo(name, inputs) {
  if (name !== CUSTOM_COMBO) return false;
  const choice = inputs.find((i) => i.name === "choice" && i.type === "COMBO" && i.widget);
  if (choice) choice.dynamic = "typed";
  return !!choice;
}

const optionName = (i) => `option${i}`;
const filled = (v) => v !== undefined && v !== null && v !== "";

const optionSpecs = []; // shared specs of option0, option1, ... (nothing edits a STRING spec)
function optionSpec(i) {
  if (!optionSpecs[i]) {
    optionSpecs[i] = {
      name: optionName(i), type: "STRING", kind: "optional", opts: {}, choices: null,
      widget: true, optional: true, dynamic: "option",
    };
  }
  return optionSpecs[i];
}

/** The option values `valueOf(name)` gives, option0 on while they are present. */
function optionValues(valueOf) {
  const out = [];
  for (let i = 0; ; i++) {
    const v = valueOf(optionName(i));
    if (v === undefined) return out;
    out.push(v);
  }
}

/** What a typed combo shows: the combo listing the options typed, then a text widget per
 * option and an empty one after the last filled. */
export function typedInputs(spec, valueOf) {
  const values = optionValues(valueOf);
  const n = values.length && !filled(values[values.length - 1]) ? values.length : values.length + 1;
  const inputs = [{ ...spec, choices: values.filter(filled).map(String) }];
  for (let i = 0; i < n; i++) inputs.push(optionSpec(i));
  return inputs;
}

/** A node's choice and options as an edit finds them (compared when it is settled). */
export function optionState(values) {
  return { choice: values.choice, options: optionValues((name) => values[name]) };
}

/** The values of a ComfyUI file's option widgets, which follow all of the node's own widgets
 * (ComfyUI's frontend adds them last): a first reading of the file, so that working out the
 * widgets it lists takes one round, not one per option. */
export function typedFileValues(def, values) {
  const seed = {};
  if (!def.typed || !Array.isArray(values)) return seed;
  const own = def.inputs.filter((i) => i.widget).length;
  for (let i = own; i < values.length; i++) seed[optionName(i - own)] = values[i];
  return seed;
}

/** After an edit that changed a node's options (`before`, optionState when it began): the
 * emptied ones go, one empty widget stays last, and the choice follows. Returns whether the
 * number of option widgets changed (the node is refitted) and whether anything did. */
export function settleTypedValues(values, before) {
  const now = optionValues((name) => values[name]);
  if (sameList(now, before.options)) return { resized: false, changed: false };
  const kept = now.filter(filled);
  const next = [...kept, ""];
  let changed = false;
  for (let i = 0; i < Math.max(now.length, next.length); i++) {
    const name = optionName(i);
    if (i >= next.length) delete values[name];
    else if (values[name] === next[i]) continue;
    else values[name] = next[i];
    changed = true;
  }
  const choice = nextChoice(values.choice, before.options, now, kept.map(String));
  if (choice !== values.choice) {
    values.choice = choice;
    changed = true;
  }
  return { resized: now.length !== next.length, changed };
}

/** The choice once the options changed: kept while listed; the edited text of the option it
 * was; the option that took the place of a removed one, or the one before; the first option
 * for a choice that was none of them; "" when no option is left. */
function nextChoice(choice, before, now, labels) {
  if (labels.includes(String(choice))) return choice;
  const at = before.findIndex((v) => filled(v) && String(v) === String(choice));
  if (at < 0) return labels[0] ?? "";
  if (filled(now[at])) return String(now[at]);
  const place = now.slice(0, at).filter(filled).length;
  return labels[Math.min(place, labels.length - 1)] ?? "";
}

function sameList(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
