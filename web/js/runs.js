// What a history entry (ComfyUI's shape: {prompt: [number, id, prompt, extra_data, outputs],
// outputs, status: {status_str, completed, messages: [[event, data]]}}) says about its run:
// how it ended, when it started and how long it took, its images, the seed behind an image
// and the workflow it was queued with.

const END_EVENTS = ["execution_success", "execution_error", "execution_interrupted"];

/** The first message of `event` in the entry's status, or null. */
function message(entry, event) {
  const messages = (entry && entry.status && entry.status.messages) || [];
  const found = messages.find((m) => Array.isArray(m) && m[0] === event);
  return found ? found[1] || {} : null;
}

/**
 * {state: "success" | "error" | "interrupted", start, end, duration} of a finished run;
 * times in ms since the epoch (null when the messages do not say). ComfyUI marks an
 * interrupted run status_str "error": its execution_interrupted message tells them apart.
 */
export function runSummary(entry) {
  const status = (entry && entry.status) || {};
  let state = "success";
  if (message(entry, "execution_interrupted")) state = "interrupted";
  else if (message(entry, "execution_error") || status.status_str === "error" || status.completed === false) state = "error";
  const started = message(entry, "execution_start");
  const start = started && Number.isFinite(started.timestamp) ? started.timestamp : null;
  let end = null;
  for (const event of END_EVENTS) {
    const m = message(entry, event);
    if (m && Number.isFinite(m.timestamp)) end = m.timestamp;
  }
  const duration = start !== null && end !== null ? Math.max(0, end - start) : null;
  return { state, start, end, duration };
}

/** "0.42 s", "12.3 s", "2 min 5 s". */
export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 10000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** The start as the user's local time (with the date when it is not today). */
export function formatStart(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

export const sameRef = (a, b) => a.filename === b.filename && (a.subfolder || "") === (b.subfolder || "") && (a.type || "output") === (b.type || "output");

/**
 * The images of history entries, newest run first (the order of the history panel), each
 * {ref, promptId, nodeId, entry, number, index (in its run), count (of its run)}.
 * `history` is /history's answer (oldest first).
 */
export function historyImages(history) {
  const items = [];
  for (const [promptId, entry] of Object.entries(history || {}).reverse()) {
    const run = [];
    for (const [nodeId, out] of Object.entries(entry.outputs || {})) {
      for (const im of (out && out.images) || []) {
        if (im && typeof im.filename === "string") run.push({ ref: { filename: im.filename, subfolder: im.subfolder || "", type: im.type || "output" }, promptId, nodeId, entry });
      }
    }
    const number = Array.isArray(entry.prompt) ? entry.prompt[0] : "";
    run.forEach((item, i) => Object.assign(item, { number, index: i, count: run.length }));
    items.push(...run);
  }
  return items;
}

const SEED_INPUTS = ["seed", "noise_seed"];
const VALUE_INPUTS = ["seed", "noise_seed", "value", "int", "number"];
const isLink = (v) => Array.isArray(v) && v.length === 2 && (typeof v[0] === "string" || typeof v[0] === "number") && Number.isInteger(v[1]);

/** A number an input holds, following one link to a node that holds it (a seed node). */
function constantOf(prompt, value) {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (!isLink(value)) return null;
  const source = prompt[String(value[0])];
  const inputs = (source && source.inputs) || {};
  for (const name of VALUE_INPUTS) if (typeof inputs[name] === "number") return inputs[name];
  return null;
}

/**
 * The seed of the sampler that produced node `nodeId`'s output in an API-format prompt: the
 * nearest node upstream with a `seed` or `noise_seed` input. {seed, nodeId, classType} or null.
 */
export function seedOf(prompt, nodeId) {
  if (!prompt || typeof prompt !== "object") return null;
  const seen = new Set([String(nodeId)]);
  const queue = [String(nodeId)];
  while (queue.length) {
    const id = queue.shift();
    const node = prompt[id];
    if (!node || typeof node !== "object") continue;
    const inputs = node.inputs || {};
    for (const name of SEED_INPUTS) {
      const seed = name in inputs ? constantOf(prompt, inputs[name]) : null;
      if (seed !== null) return { seed, nodeId: id, classType: node.class_type };
    }
    for (const value of Object.values(inputs)) {
      if (isLink(value) && !seen.has(String(value[0]))) {
        seen.add(String(value[0]));
        queue.push(String(value[0]));
      }
    }
  }
  return null;
}

/** The workflow a run was queued with (Weft's document first, then ComfyUI's), or null. */
export function workflowOf(entry) {
  const extra = entry && Array.isArray(entry.prompt) ? entry.prompt[3] : null;
  const info = extra && extra.extra_pnginfo;
  return (info && (info.weft_workflow || info.workflow)) || null;
}

/** The API-format prompt a run executed, or null. */
export function promptOf(entry) {
  return entry && Array.isArray(entry.prompt) && entry.prompt[2] && typeof entry.prompt[2] === "object" ? entry.prompt[2] : null;
}
