// The user's files and settings on the server, through ComfyUI's routes (/userdata,
// /settings, /workflow_templates), so ComfyUI's front end and Weft see the same workflows
// and settings. A name with folders ("workflows/a.json") travels as one URL segment.

const enc = encodeURIComponent;

export class UserData {
  constructor(api) {
    this.api = api;
  }

  /** Files under `dir` with ComfyUI's file info ({path, size, modified}); [] when the folder is not there yet. */
  async list(dir) {
    try {
      return await this.api.fetchJson(`/userdata?dir=${enc(dir)}&recurse=true&split=false&full_info=true`);
    } catch (e) {
      if (e.status === 404) return [];
      throw e;
    }
  }

  /** A JSON file's content. */
  read(name) {
    return this.api.fetchJson(`/userdata/${enc(name)}`);
  }

  /** Write `text`; with overwrite false an existing file is an error with status 409. */
  write(name, text, { overwrite = false } = {}) {
    return this.api.fetchJson(`/userdata/${enc(name)}?overwrite=${overwrite}&full_info=true`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: text,
    });
  }

  move(from, to, { overwrite = false } = {}) {
    return this.api.fetchJson(`/userdata/${enc(from)}/move/${enc(to)}?overwrite=${overwrite}&full_info=true`, { method: "POST" });
  }

  remove(name) {
    return this.api.fetchJson(`/userdata/${enc(name)}`, { method: "DELETE" });
  }

  settings() {
    return this.api.fetchJson("/settings");
  }

  saveSetting(id, value) {
    return this.api.fetchJson(`/settings/${enc(id)}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(value),
    });
  }

  /** Several settings at once (merged into the others). */
  saveSettings(values) {
    return this.api.fetchJson("/settings", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(values),
    });
  }

  /** {pack: [template names]}: the examples that ship with Weft under "weft", then packs'. */
  templates() {
    return this.api.fetchJson("/workflow_templates");
  }

  template(pack, name) {
    return this.api.fetchJson(`/workflow_templates/${enc(pack)}/${enc(name)}.json`);
  }
}
