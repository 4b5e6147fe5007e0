// Served as /scripts/app.js so that ComfyUI-style extensions, which do
// `import { app } from "../../scripts/app.js"`, get Weft's mapping of registerExtension
// (init, setup, nodeCreated, beforeRegisterNodeDef, getCustomWidgets). See docs/plugins.md.
if (!globalThis.weft?.comfyApp) {
  throw new Error("Weft's extension host is not installed: call installExtensionHost() before loading extensions");
}
export const app = globalThis.weft.comfyApp;
