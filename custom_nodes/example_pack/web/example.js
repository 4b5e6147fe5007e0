// example_pack's web extension. The canvas imports this file from
// /extensions/example_pack/example.js (listed by GET /extensions) after creating
// window.weft.extensions; see docs/plugins.md for the hooks.

const swatches = new Map(); // node id -> node, for nodes of our colour type

// Styles ship as a CSS file beside the script; resolve it relative to this module.
const css = document.createElement("link");
css.rel = "stylesheet";
css.href = new URL("./example.css", import.meta.url).href;
document.head.append(css);

window.weft.extensions.register({
  name: "example_pack.color",

  setup(app) {
    window.weft.exampleReady = true;
  },

  // A colour picker for inputs that declare widget="EXAMPLE_COLOR".
  widgets: {
    EXAMPLE_COLOR(node, inputName, inputSpec) {
      const input = document.createElement("input");
      input.type = "color";
      input.className = "example-color";
      input.dataset.input = inputName;
      input.value = inputSpec?.default ?? "#000000";
      return {
        element: input,
        getValue: () => input.value,
        setValue: (value) => {
          input.value = value;
        },
      };
    },
  },

  nodeCreated(node) {
    if (node.type === "ExampleColorSwatch") swatches.set(String(node.id), node);
  },

  menu: [
    {
      label: "Example pack: count colour swatches",
      action(app) {
        app.toast?.(`${swatches.size} colour swatch node(s) in the graph`);
      },
    },
  ],

  on: {
    executed(detail, app) {
      const text = detail?.output?.text;
      if (Array.isArray(text) && text.length) app.toast?.(`node ${detail.node}: ${text[0]}`);
    },
  },
});
