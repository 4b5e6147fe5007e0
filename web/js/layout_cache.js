// Node layouts kept from frame to frame for drawing. Panning and zooming change no layout, yet
// laying out every node of a large graph each frame (its widgets, sockets and the objects
// they make) was a tenth to a fifth of a frame's drawing, and its garbage the collector's
// pauses. A kept layout is reused only while everything layoutNode reads from the node, its
// definition and the run state is unchanged, compared field by field without allocating.
// Hit testing and editing still lay nodes out fresh (Renderer.layout).

import { layoutNode, uploadWidget } from "./layout.js";

export class LayoutCache {
  constructor() {
    this.kept = new WeakMap(); // node -> {lay, and what it was made from}
  }

  /** layoutNode(node, def, runtime, custom), from the cache while it still holds. */
  get(node, def, runtime, custom) {
    const k = this.kept.get(node);
    if (k && holds(k, node, def, runtime, custom)) return k.lay;
    const lay = layoutNode(node, def, runtime, custom);
    // a node without a definition is laid out from its widget values: not kept
    if (def) this.kept.set(node, { ...inputsOf(node, def, runtime, custom), lay });
    return lay;
  }
}

/** What layoutNode reads, as plain values and identities. */
function inputsOf(node, def, runtime, custom) {
  const out = runtime ? runtime.outputs[node.id] : undefined;
  const upload = uploadWidget(def);
  const control = node.properties && node.properties.control;
  return {
    def, runtime, custom, type: node.type, collapsed: node.collapsed,
    w: node.size[0], h: node.size[1],
    widgetInputs: node.inputs.map((i) => i.widget), // converted widgets, and the socket count
    outputCount: node.outputs.length,
    controlKeys: control ? Object.keys(control) : [],
    out, text: out && out.text, images: out && out.images, // merged outputs replace these arrays
    preview: runtime ? runtime.previews[node.id] : undefined,
    upload, uploadValue: upload ? node.widgets_values[upload] : undefined,
  };
}

function holds(k, node, def, runtime, custom) {
  if (k.def !== def || k.runtime !== runtime || k.custom !== custom) return false;
  if (k.type !== node.type || k.collapsed !== node.collapsed || k.w !== node.size[0] || k.h !== node.size[1]) return false;
  const inputs = node.inputs;
  if (k.widgetInputs.length !== inputs.length || k.outputCount !== node.outputs.length) return false;
  for (let i = 0; i < inputs.length; i++) if (k.widgetInputs[i] !== inputs[i].widget) return false;
  if (!sameKeys(k.controlKeys, node.properties && node.properties.control)) return false;
  const out = runtime ? runtime.outputs[node.id] : undefined;
  if (k.out !== out || (out && (k.text !== out.text || k.images !== out.images))) return false;
  if (k.preview !== (runtime ? runtime.previews[node.id] : undefined)) return false;
  return !k.upload || k.uploadValue === node.widgets_values[k.upload];
}

/** Whether `obj` has exactly the keys `keys` (control-after-generate widgets per input). */
function sameKeys(keys, obj) {
  if (!obj) return keys.length === 0;
  let n = 0;
  for (const key in obj) {
    if (!Object.prototype.hasOwnProperty.call(obj, key)) continue;
    n++;
  }
  if (n !== keys.length) return false;
  for (const key of keys) if (!(key in obj)) return false;
  return true;
}
