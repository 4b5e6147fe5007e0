// Markdown notes (ComfyUI's MarkdownNote): the note's text shown rendered over the canvas.
// Safe by construction: the text is never parsed as HTML. A small subset of Markdown becomes
// elements made with createElement and text nodes: headings, paragraphs (a line break is
// kept), **bold**, *italic*, ~~struck~~, `code`, fenced code blocks, - and 1. lists, > quotes,
// --- rules and [links](https://...) to http(s) and mailto addresses only. Everything else,
// HTML tags included, shows as the characters typed.

const SAFE_URL = /^(https?:\/\/|mailto:)/i;

// inline marks, earliest match first; at the same place the earlier rule wins (** before *)
const INLINE = [
  ["code", /`([^`\n]+)`/],
  ["a", /\[([^\]\n]+)\]\(([^()\s]+)\)/],
  ["strong", /\*\*(\S(?:[^\n]*?\S)?)\*\*/],
  ["strong", /(?<!\w)__(\S(?:[^\n]*?\S)?)__(?!\w)/],
  ["del", /~~(\S(?:[^\n]*?\S)?)~~/],
  ["em", /\*(\S(?:[^*\n]*?\S)?)\*/],
  ["em", /(?<!\w)_(\S(?:[^_\n]*?\S)?)_(?!\w)/],
];

const FENCE = /^\s*```/;
const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^\s*>\s?/;
const ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+/;

/** An element with children: strings become text nodes (never HTML). */
function el(tag, children = []) {
  const e = document.createElement(tag);
  for (const c of children) e.append(typeof c === "string" ? document.createTextNode(c) : c);
  return e;
}

/** The inline marks of one block's text, as nodes; line breaks become <br>. */
function inline(text) {
  const out = [];
  String(text).split("\n").forEach((line, i) => {
    if (i) out.push(el("br"));
    out.push(...inlineLine(line));
  });
  return out;
}

function inlineLine(text) {
  const out = [];
  let rest = text;
  while (rest) {
    let best = null;
    for (const [tag, re] of INLINE) {
      const m = re.exec(rest);
      if (m && (!best || m.index < best.m.index)) best = { tag, m };
    }
    if (!best) {
      out.push(rest);
      break;
    }
    const { tag, m } = best;
    if (m.index) out.push(rest.slice(0, m.index));
    out.push(markElement(tag, m));
    rest = rest.slice(m.index + m[0].length);
  }
  return out;
}

function markElement(tag, m) {
  if (tag === "code") return el("code", [m[1]]);
  if (tag !== "a") return el(tag, inlineLine(m[1]));
  if (!SAFE_URL.test(m[2])) return m[0]; // javascript:, data:, relative: shown as typed
  const a = el("a", inlineLine(m[1]));
  a.href = m[2];
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

/** The lines of one list from `i`: its items (a line that starts no new block continues one). */
function listAt(lines, i) {
  const ordered = /\d/.test(lines[i].match(ITEM)[1]);
  const items = [];
  while (i < lines.length && lines[i].trim()) {
    const m = lines[i].match(ITEM);
    if (m && /\d/.test(m[1]) === ordered) items.push(lines[i].slice(m[0].length));
    else if (m || startsBlock(lines[i])) break;
    else items[items.length - 1] += `\n${lines[i].trim()}`;
    i++;
  }
  return { element: el(ordered ? "ol" : "ul", items.map((t) => el("li", inline(t)))), next: i };
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

/** One block starting at line i (not blank): {element, next}. */
function blockAt(lines, i) {
  const line = lines[i];
  if (FENCE.test(line)) {
    const code = [];
    for (i++; i < lines.length && !FENCE.test(lines[i]); i++) code.push(lines[i]);
    return { element: el("pre", [el("code", [code.join("\n")])]), next: i + 1 };
  }
  const h = line.match(HEADING);
  if (h) return { element: el(`h${h[1].length}`, inline(h[2])), next: i + 1 };
  if (RULE.test(line)) return { element: el("hr"), next: i + 1 };
  if (QUOTE.test(line)) {
    const inner = [];
    for (; i < lines.length && QUOTE.test(lines[i]); i++) inner.push(lines[i].replace(QUOTE, ""));
    return { element: el("blockquote", [renderMarkdown(inner.join("\n"))]), next: i };
  }
  if (ITEM.test(line)) return listAt(lines, i);
  const para = [];
  for (; i < lines.length && lines[i].trim() && (!para.length || !startsBlock(lines[i])); i++) para.push(lines[i]);
  return { element: el("p", inline(para.join("\n"))), next: i };
}

/** Markdown text as a DocumentFragment of safe elements. */
export function renderMarkdown(text) {
  const frag = document.createDocumentFragment();
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    if (!lines[i].trim()) {
      i++;
      continue;
    }
    const { element, next } = blockAt(lines, i);
    frag.append(element);
    i = next;
  }
  return frag;
}

/** The rendered text of the Markdown notes in view, placed over their nodes (renderer.draw
 * calls sync every frame). Pointer events go through to the canvas, except on links. */
export class MarkdownNotes {
  constructor(renderer) {
    this.r = renderer;
    this.shown = new Map(); // "tab:node" -> {element, text}
    this.layer = null;
  }

  sync(visible, lowDetail, detail) {
    if (!this.shown.size && (lowDetail || !visible.some((n) => n.type === "MarkdownNote"))) return;
    const r = this.r;
    const app = r.app;
    const seen = new Set();
    if (!lowDetail) {
      for (const node of visible) {
        if (node.type !== "MarkdownNote") continue;
        const lay = r.layouts.get(node.id);
        const wd = lay && lay.widgets.find((w) => w.markdown);
        if (!wd) continue;
        const key = `${app.tab.id}:${node.id}`;
        seen.add(key);
        this.place(this.entry(key, node), node, wd, detail);
      }
    }
    for (const [key, entry] of this.shown) {
      if (seen.has(key)) continue;
      entry.element.remove();
      this.shown.delete(key);
    }
  }

  entry(key, node) {
    let entry = this.shown.get(key);
    if (!entry) {
      if (!this.layer) {
        this.layer = el("div");
        this.layer.id = "markdown-layer";
        this.r.canvas.after(this.layer); // under the minimap and the panels
      }
      const element = el("div");
      element.className = "markdown-note";
      element.dataset.node = String(node.id);
      this.layer.append(element);
      entry = { element, text: null };
      this.shown.set(key, entry);
    }
    const text = String(node.widgets_values.text ?? "");
    if (entry.text !== text) {
      entry.text = text;
      entry.element.replaceChildren(text.trim() ? renderMarkdown(text) : el("p", ["Click to write Markdown"]));
      entry.element.classList.toggle("empty", !text.trim());
    }
    return entry;
  }

  place(entry, node, wd, detail) {
    const r = this.r;
    const aw = r.app.interaction && r.app.interaction.activeWidget;
    const editing = aw && aw.node === node.id && aw.name === wd.name;
    const [sx, sy] = r.toScreen(node.pos[0] + wd.x, node.pos[1] + wd.y);
    // panning and zooming change only the transform (no layout; the text is not laid out again)
    const style = entry.element.style;
    const size = `${wd.w}x${wd.h}`;
    if (entry.size !== size) {
      entry.size = size;
      Object.assign(style, { width: `${wd.w}px`, height: `${wd.h}px` });
    }
    style.transform = `translate(${sx.toFixed(1)}px, ${sy.toFixed(1)}px) scale(${r.ds.scale})`;
    const opacity = detail < 1 ? String(Math.max(0, detail).toFixed(2)) : "";
    if (style.opacity !== opacity) style.opacity = opacity;
    const display = editing ? "none" : "";
    if (style.display !== display) style.display = display;
  }
}
