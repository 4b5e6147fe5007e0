// Where a dragged link ends: on a node it connects to the socket dropped on, or else the
// first free socket of a fitting type (a widget of that type becomes an input); in empty
// space the search opens with only the nodes that fit, and the pick is connected.

import { connect, convertWidgetToInput, effectiveOutputType, linkInto, typesCompatible } from "./state.js";

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
    const h = this.ia.hit(wx, wy);
    if (h && h.node && h.node.id !== d.node) {
      const done = d.from === "output" ? this.toInput(d, h) : this.toOutput(d, h);
      if (!done && h.part === (d.from === "output" ? "input" : "output")) {
        const other = d.from === "output" ? h.node.inputs[h.slot].type : effectiveOutputType(this.graph, h.node, h.slot);
        app.toast(`Cannot connect ${d.from === "output" ? d.type : other} to ${d.from === "output" ? other : d.type}`, "warn");
      }
    } else if (!h) {
      this.offerNodes(d, wx, wy, sx, sy);
      return;
    }
    app.history.commit();
    app.changed();
  }

  /** Connect an output's drag to the node under it; true when connected. */
  toInput(d, h) {
    const graph = this.graph;
    const node = h.node;
    let slot = h.part === "input" ? h.slot : -1;
    if (slot < 0 || !typesCompatible(d.type, node.inputs[slot].type)) {
      slot = -1;
      if (h.part !== "input") {
        const free = node.inputs.findIndex((inp, i) => typesCompatible(d.type, inp.type) && !linkInto(graph, node.id, i));
        slot = free >= 0 ? free : node.inputs.findIndex((inp) => typesCompatible(d.type, inp.type));
        if (slot < 0 && h.part === "widget") slot = this.widgetToInput(d, node, h.widget);
      }
    }
    if (slot >= 0) return !!connect(graph, d.node, d.slot, node.id, slot);
    this.app.toast(`${node.title || node.type} has no input that takes ${d.type}`, "warn");
    return false;
  }

  /** Dropping on a widget of a matching type converts it to an input: its slot, or -1. */
  widgetToInput(d, node, wd) {
    const def = this.app.defFor(node);
    if (!def || !typesCompatible(d.type, wd.spec.type) || wd.kind === "control" || wd.kind === "upload") return -1;
    convertWidgetToInput(this.graph, node, def, wd.name);
    return node.inputs.length - 1;
  }

  /** Connect an input's drag to an output of the node under it; true when connected. */
  toOutput(d, h) {
    const graph = this.graph;
    const node = h.node;
    let slot = h.part === "output" ? h.slot : -1;
    if (slot < 0 || !typesCompatible(effectiveOutputType(graph, node, slot), d.type)) {
      slot = h.part === "output" ? -1 : node.outputs.findIndex((o, i) => typesCompatible(effectiveOutputType(graph, node, i), d.type));
    }
    if (slot >= 0) return !!connect(graph, node.id, slot, d.node, d.slot);
    this.app.toast(`${node.title || node.type} has no output of type ${d.type}`, "warn");
    return false;
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
