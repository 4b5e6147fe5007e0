// Built-in editor-only node definitions and the default workflow.

import { connect, createNode, emptyGraph, touch } from "./state.js";

export const VIRTUAL_DEFS = {
  Reroute: {
    name: "Reroute", display_name: "Reroute", category: "utils", description: "A point to route a link through; passes any type.",
    output_node: false, virtual: true,
    inputs: [{ name: "", type: "*", kind: "required", opts: {}, choices: null, widget: false }],
    outputs: [{ name: "", type: "*", is_list: false }],
  },
  Note: {
    name: "Note", display_name: "Note", category: "utils", description: "A text note on the canvas; not executed.",
    output_node: false, virtual: true,
    inputs: [{ name: "text", type: "STRING", kind: "required", opts: { multiline: true }, choices: null, widget: true }],
    outputs: [],
  },
  MarkdownNote: {
    name: "MarkdownNote", display_name: "Markdown Note", category: "utils",
    description: "A note written in Markdown, shown rendered on the canvas (click it to edit); not executed.",
    output_node: false, virtual: true,
    inputs: [{ name: "text", type: "STRING", kind: "required", opts: { multiline: true, markdown: true }, choices: null, widget: true }],
    outputs: [],
  },
};

const primitiveDefs = new Map();

/** ComfyUI's legacy "PrimitiveNode": one widget whose type follows its output. */
export function primitiveDef(node) {
  const type = (node.outputs[0] && node.outputs[0].type) || "*";
  if (!primitiveDefs.has(type)) {
    const widgetType = ["INT", "FLOAT", "BOOLEAN", "STRING"].includes(type) ? type : "STRING";
    primitiveDefs.set(type, {
      name: "PrimitiveNode", display_name: "Primitive", category: "utils", description: "", output_node: false, virtual: true,
      inputs: [{ name: "value", type: widgetType, kind: "required", opts: {}, choices: null, widget: true }],
      outputs: [{ name: type, type, is_list: false }],
    });
  }
  return primitiveDefs.get(type);
}

/** Native settings of the models that ship with Weft (models_builtin/): the built-in shapes model
 * draws 64x64 pictures from captions like the one below, and learnt "" as its unconditional prompt. */
const BUILTIN_PRESETS = {
  "weft-shapes.safetensors": {
    positive: "a large red circle in the centre, blue background", negative: "",
    width: 64, height: 64, steps: 20, cfg: 5, sampler_name: "euler", scheduler: "normal",
  },
};
const GENERIC_PRESET = {
  positive: "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,", negative: "text, watermark",
  width: 512, height: 512, steps: 20, cfg: 8, sampler_name: "euler", scheduler: "normal",
};

const TXT2IMG = ["CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage"];

/** ComfyUI's default txt2img graph, with the first checkpoint the server lists (at its native size
 * and with a prompt it understands when it is a built-in model); or, when the diffusion nodes
 * are not installed, a small text graph that runs on the core nodes. */
export function defaultGraph(defs) {
  const graph = emptyGraph();
  if (TXT2IMG.every((t) => defs[t])) {
    const add = (type, pos, values = {}, size = null) => {
      const n = createNode(graph, defs[type], pos, defs);
      Object.assign(n.widgets_values, values);
      if (size) n.size = size;
      return n;
    };
    const ckptChoices = (defs.CheckpointLoaderSimple.inputs.find((i) => i.name === "ckpt_name") || {}).choices || [];
    const preset = BUILTIN_PRESETS[ckptChoices[0]] || GENERIC_PRESET;
    const ckpt = add("CheckpointLoaderSimple", [26, 474], ckptChoices.length ? { ckpt_name: ckptChoices[0] } : {}, [315, 98]);
    const pos = add("CLIPTextEncode", [415, 186], { text: preset.positive }, [422, 164]);
    const neg = add("CLIPTextEncode", [413, 389], { text: preset.negative }, [425, 180]);
    const latent = add("EmptyLatentImage", [473, 609], { width: preset.width, height: preset.height, batch_size: 1 }, [315, 106]);
    const sampler = add("KSampler", [863, 186], {
      steps: preset.steps, cfg: preset.cfg, sampler_name: preset.sampler_name, scheduler: preset.scheduler, denoise: 1,
    }, [315, 262]);
    const decode = add("VAEDecode", [1209, 188], {}, [210, 46]);
    const save = add("SaveImage", [1451, 189], { filename_prefix: "ComfyUI" }, [210, 270]);
    pos.title = "Positive prompt";
    neg.title = "Negative prompt";
    const link = (a, as, b, bname) => connect(graph, a.id, as, b.id, b.inputs.findIndex((i) => i.name === bname));
    link(ckpt, 0, sampler, "model");
    link(ckpt, 1, pos, "clip");
    link(ckpt, 1, neg, "clip");
    link(pos, 0, sampler, "positive");
    link(neg, 0, sampler, "negative");
    link(latent, 0, sampler, "latent_image");
    link(sampler, 0, decode, "samples");
    link(ckpt, 2, decode, "vae");
    link(decode, 0, save, "images");
    // no view of its own: the editor fits it to the window it opens in (workspace.js)
  } else if (defs.PrimitiveStringMultiline && defs.PreviewAny) {
    const text = createNode(graph, defs.PrimitiveStringMultiline, [80, 140], defs);
    text.widgets_values.value = "Hello from Weft";
    const show = createNode(graph, defs.PreviewAny, [420, 140], defs);
    connect(graph, text.id, 0, show.id, 0);
    graph.extra.ds = { scale: 1, offset: [40, 40] };
  }
  touch(graph);
  return graph;
}
