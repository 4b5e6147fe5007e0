// Served as /scripts/api.js for ComfyUI-style extensions: `import { api } from "../../scripts/api.js"`.
// Provides fetchApi, apiURL, fileURL, addEventListener and removeEventListener.
if (!globalThis.weft?.comfyApi) {
  throw new Error("Weft's extension host is not installed: call installExtensionHost() before loading extensions");
}
export const api = globalThis.weft.comfyApi;
