// Written the way ComfyUI extensions are: imports app and api by relative path.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

app.registerExtension({
  name: "classic_pack.comfy_style",
  async setup() {
    const response = await api.fetchApi("/plugins");
    const report = await response.json();
    window.__comfyStyle = { setup: true, packs: report.summary.total, events: [], created: [] };
    api.addEventListener("executing", (event) => window.__comfyStyle.events.push(event.detail.node));
  },
  nodeCreated(node) {
    window.__comfyStyle.created.push(node.type);
  },
});
