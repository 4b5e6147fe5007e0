// One undo history per workflow. Every edit runs as a command: the history snapshots the
// graph before it, and records the command only if the graph really changed. Continuous
// gestures (dragging, typing in a number) are one command from start to end. An optional
// `settle` ({observe(graph), settle(graph, observed)}) finishes each command before it is
// recorded (the inputs ComfyUI's dynamic inputs bring, dynamic.js), so undo takes both back.

const LIMIT = 200;

function snapshot(graph) {
  // the viewport is not part of the edit history
  const { extra, ...rest } = graph;
  const ds = extra && extra.ds;
  return JSON.stringify({ ...rest, extra: { ...extra, ds: undefined } }) + "\u0000" + JSON.stringify(ds || null);
}

function contentOf(snap) {
  return snap.slice(0, snap.lastIndexOf("\u0000"));
}

export class History {
  constructor(getGraph, setGraph, onChange, settle = null) {
    this.getGraph = getGraph;
    this.setGraph = setGraph;
    this.onChange = onChange || (() => {});
    this.settle = settle;
    this.undoStack = [];
    this.redoStack = [];
    this.pending = null;
    this.depth = 0;
  }

  /** Start a gesture; nested begins join the outer one. */
  begin(label) {
    if (this.depth++ > 0) return;
    const graph = this.getGraph();
    this.pending = { label, before: snapshot(graph), observed: this.settle ? this.settle.observe(graph) : null };
  }

  /** End a gesture; records it if the graph changed. Returns true when recorded. */
  commit() {
    if (this.depth === 0) return false;
    if (--this.depth > 0) return false;
    const { label, before, observed } = this.pending;
    this.pending = null;
    if (this.settle) this.settle.settle(this.getGraph(), observed);
    const after = snapshot(this.getGraph());
    if (contentOf(after) === contentOf(before)) {
      this.onChange(false);
      return false;
    }
    this.undoStack.push({ label, before, after });
    if (this.undoStack.length > LIMIT) this.undoStack.shift();
    this.redoStack = [];
    this.onChange(true);
    return true;
  }

  /** Abandon a gesture, restoring the graph as it was. */
  cancel() {
    if (this.depth === 0) return;
    this.depth = 0;
    const { before } = this.pending;
    this.pending = null;
    this.restore(before);
    this.onChange(false);
  }

  /** Run fn as one undoable command. */
  run(label, fn) {
    this.begin(label);
    let result;
    try {
      result = fn();
    } finally {
      this.commit();
    }
    return result;
  }

  restore(snap) {
    const cut = snap.lastIndexOf("\u0000");
    const graph = JSON.parse(snap.slice(0, cut));
    const current = this.getGraph();
    graph.extra = { ...(graph.extra || {}), ds: current.extra && current.extra.ds };
    this.setGraph(graph);
  }

  undo() {
    if (this.depth) this.cancel();
    const entry = this.undoStack.pop();
    if (!entry) return null;
    this.redoStack.push(entry);
    this.restore(entry.before);
    this.onChange(true);
    return entry.label;
  }

  redo() {
    const entry = this.redoStack.pop();
    if (!entry) return null;
    this.undoStack.push(entry);
    this.restore(entry.after);
    this.onChange(true);
    return entry.label;
  }

  get canUndo() {
    return this.undoStack.length > 0;
  }

  get canRedo() {
    return this.redoStack.length > 0;
  }
}
