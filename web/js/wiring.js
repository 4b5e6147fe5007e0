// Where a dragged link ends. On a socket it connects there, even when another node covers
// the socket (the node the link comes from, say). On a node (title, body, a widget) it takes
// the widget dropped on when that fits, else the first free input of a fitting type, else any
// input of that type, else the first widget of that type (turned into an input); when nothing
// fits, or the link would make a loop, a message says why. In empty space the search opens
// with only the nodes that fit, and the pick is connected.

import { connect, convertWidgetToInput, createsCycle, effectiveOutputType, isWidgetConverted, linkInto, typesCompatible } from "./state.js";
import { hitTest, socketAt } from "./hit.js";

/** Widgets a link can drive once they are turned into inputs (not the extra rows). */
const CONVERTIBLE = new Set(["number", "combo", "toggle", "text", "multiline", "dom"]);

export class Wiring {
  constructor(interaction) {
    this.ia = interaction;
  }

  get app() {
    return this.ia.app;
  }

  get graph() {
    return this.ia.graph;
  }

  /** The drag d (from an output or an input) ends at world (wx, wy), canvas (sx, sy). */
  finish(d, wx, wy, sx, sy) {
    const app = this.app;
    const h = this.dropTarget(d, wx, wy);
    if (!h || h.group) {
      this.offerNodes(d, wx, wy, sx, sy);
      return;
    }
    if (h.node.id !== d.node) {
      const problem = d.from === "output" ? this.toInput(d, h) : this.toOutput(d, h);
      if (problem) app.toast(problem, "warn");
    } // dropped back on its own node: nothing to do
    app.history.commit();
    app.changed();
  }

  /** What the link was dropped on: a socket of the other kind first (also under another
   * node), else the node part under the pointer, seeing through the link's own node. */
  dropTarget(d, wx, wy) {
    const app = this.app;
    const socket = socketAt(app, wx, wy, d.from === "output" ? "input" : "output", d.node);
    if (socket) return { ...socket, exact: true };
    const h = hitTest(app, wx, wy);
    if (!h || !h.node || h.node.id !== d.node) return h;
    const under = hitTest(app, wx, wy, d.node);
    return under && under.node ? under : h;
  }

  /** A node's name as shown. */
  label(node) {
    const def = this.app.defFor(node);
    return node.title || (def ? def.display_name : node.type);
  }

  /** Connect an output's drag to the node part h; null when connected, else why not. */
  toInput(d, h) {
    const graph = this.graph;
    const node = h.node;
    if (h.exact && !typesCompatible(d.type, node.inputs[h.slot].type)) {
      const inp = node.inputs[h.slot];
      return `Cannot connect ${d.type} to ${inp.type} (${inp.label || inp.name} of ${this.label(node)})`;
    }
    if (createsCycle(graph, d.node, node.id)) return `Cannot connect: ${this.label(node)} feeds the node the link comes from (it would make a loop)`;
    let slot = this.inputFor(d, h);
    if (slot === null) return `${this.label(node)} has no input that takes ${d.type}`;
    if (typeof slot === "string") {
      convertWidgetToInput(graph, node, this.app.defFor(node), slot);
      slot = node.inputs.length - 1;
    }
    return connect(graph, d.node, d.slot, node.id, slot) ? null : `Cannot connect ${d.type} to ${this.label(node)}`;
  }

  /** The input slot for a link dropped on h, or the name of a widget to turn into one, or null. */
  inputFor(d, h) {
    const graph = this.graph;
    const node = h.node;
    const fits = (inp) => typesCompatible(d.type, inp.type);
    if (h.part === "input" && fits(node.inputs[h.slot])) return h.slot;
    if (h.part === "widget" && this.convertible(d, node, h.widget.spec, h.widget.kind)) return h.widget.name;
    const free = node.inputs.findIndex((inp, i) => fits(inp) && !linkInto(graph, node.id, i));
    if (free >= 0) return free;
    const any = node.inputs.findIndex(fits);
    if (any >= 0) return any;
    if (d.type === "*") return null; // an untyped link turns a widget into an input only when dropped on it
    const def = this.app.defFor(node);
    const spec = def ? def.inputs.find((i) => this.convertible(d, node, i, this.widgetKind(node, i.name))) : null;
    return spec ? spec.name : null;
  }

  /** Whether a widget of the node can become an input for this link (not on editor-only nodes). */
  convertible(d, node, spec, kind) {
    const def = this.app.defFor(node);
    if (!def || def.virtual || !spec || !spec.widget || spec.dynamic || !CONVERTIBLE.has(kind)) return false;
    return typesCompatible(d.type, spec.type) && !isWidgetConverted(node, spec.name);
  }

  /** The kind of the widget a node shows for an input (null when it shows none). */
  widgetKind(node, name) {
    const wd = this.ia.r.layout(node).widgets.find((w) => w.name === name);
    return wd ? wd.kind : null;
  }

  /** Connect an input's drag to an output of the node part h; null when connected, else why not. */
  toOutput(d, h) {
    const graph = this.graph;
    const node = h.node;
    const typeOf = (i) => effectiveOutputType(graph, node, i);
    if (h.exact && !typesCompatible(typeOf(h.slot), d.type)) return `Cannot connect ${typeOf(h.slot)} to ${d.type}`;
    if (createsCycle(graph, node.id, d.node)) return `Cannot connect: the link's node feeds ${this.label(node)} (it would make a loop)`;
    let slot = h.part === "output" && typesCompatible(typeOf(h.slot), d.type) ? h.slot : -1;
    if (slot < 0) slot = node.outputs.findIndex((o, i) => typesCompatible(typeOf(i), d.type));
    if (slot < 0) return `${this.label(node)} has no output of type ${d.type}`;
    return connect(graph, node.id, slot, d.node, d.slot) ? null : `Cannot connect ${this.label(node)} to ${d.type}`;
  }

  /** Released in empty space: offer only nodes that fit, and connect the one picked. */
  offerNodes(d, wx, wy, sx, sy) {
    const app = this.app;
    const graph = this.graph;
    const rect = this.ia.canvas.getBoundingClientRect();
    app.search.onCancel = () => {
      app.history.commit();
      app.changed();
    };
    app.search.open(rect.left + sx, rect.top + sy, {
      filter: { from: d.from, type: d.type },
      onPick: (def) => {
        const node = app.addNodeRaw(def, [wx, wy]);
        connectNew(graph, d, node, def, wx, wy);
        app.setSelection([node.id]);
        app.history.commit();
        app.changed();
      },
    });
  }
}

/** Connect a node just picked for a link dropped in space to the link's socket. */
function connectNew(graph, d, node, def, wx, wy) {
  if (d.from === "output") {
    const slot = node.inputs.findIndex((inp) => typesCompatible(d.type, inp.type));
    if (slot >= 0) connect(graph, d.node, d.slot, node.id, slot);
    else {
      const spec = def.inputs.find((i) => i.widget && typesCompatible(d.type, i.type));
      if (spec) {
        convertWidgetToInput(graph, node, def, spec.name);
        connect(graph, d.node, d.slot, node.id, node.inputs.length - 1);
      }
    }
  } else {
    node.pos = [Math.round(wx - node.size[0]), Math.round(wy - 20)];
    const slot = node.outputs.findIndex((o) => typesCompatible(o.type, d.type));
    if (slot >= 0) connect(graph, node.id, slot, d.node, d.slot);
  }
}
