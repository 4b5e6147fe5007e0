// Weft web-extension host: the browser half of the custom-node-pack hooks API.
//
// Served by the server at /weft/extension-host.js. The canvas creates one host at start-up;
// packs' scripts (listed by GET /extensions) call window.weft.extensions.register({...}).
// Every hook call is isolated: an extension that throws is recorded in host.errors and
// logged, and the canvas and the other extensions carry on. See docs/plugins.md.
//
// Extension shape (all members optional except name):
//   {
//     name: "pack.feature",                        // unique
//     setup(app) {},                                // once, after all scripts loaded (may be async)
//     beforeRegisterNodeDef(nodeDef, app) {},       // per node type from /object_info, before use
//     nodeCreated(node, app) {},                    // per node added to the graph (new or loaded)
//     widgets: { KEY(node, inputName, inputSpec, app) { return {element, getValue, setValue} } },
//     menu: [{ label: "Text", action(app) {} }],
//     on: { executed(detail, app) {}, status(detail, app) {}, ... },  // server events by name
//   }

export class ExtensionHost {
  constructor(app, { base = "" } = {}) {
    this.app = app;
    this.base = base;
    this.extensions = [];
    this.errors = [];
    this.loaded = [];
    this.setupDone = false;
    this.listeners = new Map(); // ComfyUI-style api.addEventListener(type, fn)
  }

  _report(extension, hook, error) {
    const name = extension?.name ?? String(extension);
    this.errors.push({ extension: name, hook, message: String(error?.message ?? error) });
    console.error(`[weft] extension ${name} failed in ${hook}:`, error);
  }

  _call(extension, hook, fn, ...args) {
    try {
      const result = fn.apply(extension, args);
      if (result && typeof result.then === "function") {
        return result.catch((error) => this._report(extension, hook, error));
      }
      return result;
    } catch (error) {
      this._report(extension, hook, error);
      return undefined;
    }
  }

  /** Add an extension. Registered after setup() ran, its setup runs at once. */
  register(extension) {
    if (!extension || typeof extension.name !== "string" || !extension.name) {
      throw new TypeError("weft.extensions.register needs an object with a non-empty name");
    }
    if (this.extensions.some((e) => e.name === extension.name)) {
      throw new Error(`extension ${extension.name} is already registered`);
    }
    this.extensions.push(extension);
    if (this.setupDone && typeof extension.setup === "function") {
      return this._call(extension, "setup", extension.setup, this.app);
    }
    return undefined;
  }

  /** ComfyUI-style extension objects (app.registerExtension) mapped onto the same hooks. */
  registerComfy(extension) {
    const mapped = { name: extension.name, comfy: extension };
    if (extension.init || extension.setup) {
      mapped.setup = async (app) => {
        if (extension.init) await extension.init(app);
        if (extension.setup) await extension.setup(app);
      };
    }
    if (extension.nodeCreated) mapped.nodeCreated = (node, app) => extension.nodeCreated(node, app);
    if (extension.beforeRegisterNodeDef) {
      mapped.beforeRegisterNodeDef = (nodeDef, app) => extension.beforeRegisterNodeDef(nodeDef.nodeType ?? nodeDef, nodeDef, app);
    }
    if (extension.getCustomWidgets) {
      mapped.widgets = {};
      mapped._comfyWidgets = extension.getCustomWidgets(this.app);
      Object.assign(mapped.widgets, mapped._comfyWidgets);
    }
    return this.register(mapped);
  }

  /** Fetch the server's /extensions list and import each script; failures are isolated. */
  async loadAll() {
    let urls = [];
    try {
      const response = await fetch(`${this.base}/extensions`);
      urls = await response.json();
    } catch (error) {
      this._report({ name: "/extensions" }, "load", error);
      return [];
    }
    await Promise.all(
      urls.map(async (url) => {
        try {
          await import(`${this.base}${url}`);
          this.loaded.push(url);
        } catch (error) {
          this._report({ name: url }, "import", error);
        }
      }),
    );
    return this.loaded;
  }

  /** Run every extension's setup(app) once; call after loadAll() and after node defs load. */
  async setup() {
    this.setupDone = true;
    for (const extension of [...this.extensions]) {
      if (typeof extension.setup === "function") await this._call(extension, "setup", extension.setup, this.app);
    }
  }

  beforeRegisterNodeDef(nodeDef) {
    for (const extension of this.extensions) {
      if (typeof extension.beforeRegisterNodeDef === "function") {
        this._call(extension, "beforeRegisterNodeDef", extension.beforeRegisterNodeDef, nodeDef, this.app);
      }
    }
  }

  nodeCreated(node) {
    for (const extension of this.extensions) {
      if (typeof extension.nodeCreated === "function") this._call(extension, "nodeCreated", extension.nodeCreated, node, this.app);
    }
  }

  /**
   * The custom widget factory for an input, or null. Looked up by the input's `widget`
   * option first (a STRING/INT input that wants a special editor), then by its type.
   */
  widgetFor(inputType, inputOptions = {}) {
    const keys = [inputOptions?.widget, inputType].filter((k) => typeof k === "string");
    for (const key of keys) {
      for (const extension of this.extensions) {
        const factory = extension.widgets?.[key];
        if (typeof factory === "function") {
          return (node, inputName, inputSpec) => this._call(extension, `widgets.${key}`, factory, node, inputName, inputSpec, this.app);
        }
      }
    }
    return null;
  }

  /** Menu entries of all extensions: [{label, extension, run()}]. */
  menuItems() {
    const items = [];
    for (const extension of this.extensions) {
      for (const entry of extension.menu ?? []) {
        if (!entry || typeof entry.label !== "string" || typeof entry.action !== "function") continue;
        items.push({
          label: entry.label,
          extension: extension.name,
          run: () => this._call(extension, `menu:${entry.label}`, entry.action, this.app),
        });
      }
    }
    return items;
  }

  /** Deliver a server event (the WebSocket message type and its data) to listening extensions. */
  emit(event, detail) {
    for (const extension of this.extensions) {
      const handler = extension.on?.[event];
      if (typeof handler === "function") this._call(extension, `on.${event}`, handler, detail, this.app);
    }
    for (const fn of this.listeners.get(event) ?? []) {
      this._call({ name: `api listener for ${event}` }, "api event", fn, new CustomEvent(event, { detail }));
    }
  }

  /** The subset of ComfyUI's `api` object that extensions use most, served as /scripts/api.js. */
  comfyApi() {
    const base = this.base;
    return {
      apiURL: (route) => `${base}/api${route}`,
      fileURL: (route) => `${base}${route}`,
      fetchApi: (route, init) => fetch(`${base}/api${route}`, init),
      addEventListener: (type, fn) => {
        if (!this.listeners.has(type)) this.listeners.set(type, new Set());
        this.listeners.get(type).add(fn);
      },
      removeEventListener: (type, fn) => this.listeners.get(type)?.delete(fn),
    };
  }
}

/** Create the host and expose it as window.weft.extensions (what pack scripts call). */
export function installExtensionHost(app, options = {}) {
  const host = new ExtensionHost(app, options);
  const weft = (globalThis.weft = globalThis.weft ?? {});
  weft.extensions = {
    register: (extension) => host.register(extension),
    registerComfy: (extension) => host.registerComfy(extension),
    host,
  };
  weft.comfyApi = host.comfyApi();
  weft.comfyApp = { registerExtension: (extension) => host.registerComfy(extension), api: weft.comfyApi };
  return host;
}
