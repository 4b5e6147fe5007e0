// Right-click menus: on a node (disconnect, images, rename, bypass/mute, convert widgets
// and inputs, colour, remove), on a group, on a link (reroute, delete) and on empty canvas
// (add nodes, browse by category, groups, paste, fit view).

import { MODE_BYPASS, MODE_MUTED, convertInputToWidget, convertWidgetToInput, getNode, linkInto, linksFrom, removeLink } from "./state.js";
import { showMenu } from "./menu.js";

const NODE_COLORS = { red: "#5a2a2a", green: "#2a4a2a", blue: "#2a3a5a", purple: "#4a2a5a", yellow: "#5a5a2a", none: null };
const GROUP_COLORS = { blue: "#3f789e", green: "#4a7a4a", red: "#8a4b4b", purple: "#6e4a8a", yellow: "#8a7a3a", grey: "#5a5d63" };

export class ContextMenus {
  constructor(interaction) {
    this.ia = interaction;
  }

  get app() {
    return this.ia.app;
  }

  get graph() {
    return this.ia.graph;
  }

  onContextMenu(e) {
    e.preventDefault();
    const ia = this.ia;
    const [sx, sy] = ia.local(e);
    const [wx, wy] = ia.r.toWorld(sx, sy);
    const h = ia.hit(wx, wy);
    let items;
    if (h && h.node) items = this.nodeMenu(h);
    else if (h && h.group) items = this.groupMenu(h.group);
    else {
      const onLink = ia.linkAt(wx, wy);
      items = onLink ? this.linkMenu(onLink) : this.canvasMenu(e, [wx, wy]);
    }
    showMenu(e.clientX, e.clientY, items);
  }

  nodeMenu(h) {
    const app = this.app;
    const graph = this.graph;
    const node = h.node;
    if (!app.selection.has(node.id)) app.setSelection([node.id]);
    const items = [];
    if (h.part === "input" && linkInto(graph, node.id, h.slot)) {
      items.push({ label: "Disconnect input", action: () => app.cmd("Disconnect", () => removeLink(graph, linkInto(graph, node.id, h.slot).id)) });
    }
    if (h.part === "output" && linksFrom(graph, node.id, h.slot).length) {
      items.push({ label: "Disconnect output", action: () => app.cmd("Disconnect", () => linksFrom(graph, node.id, h.slot).forEach((l) => removeLink(graph, l.id))) });
    }
    items.push(...this.imageItems(node));
    items.push(
      { label: "Rename", action: () => this.ia.widgets.renameNode(node) },
      { label: node.mode === MODE_BYPASS ? "Remove bypass" : "Bypass", shortcut: "Ctrl+B", action: () => app.toggleMode(MODE_BYPASS) },
      { label: node.mode === MODE_MUTED ? "Unmute" : "Mute", shortcut: "Ctrl+M", action: () => app.toggleMode(MODE_MUTED) },
      { label: node.collapsed ? "Expand" : "Collapse", action: () => app.cmd("Collapse node", () => { node.collapsed = !node.collapsed; if (!node.collapsed) delete node.collapsed; }) },
      { label: "Duplicate", shortcut: "Ctrl+D", action: () => app.duplicate() },
      { label: "Copy", shortcut: "Ctrl+C", action: () => app.copy() },
    );
    items.push(...this.convertItems(node, app.defFor(node)));
    items.push({ separator: true });
    for (const [name, c] of Object.entries(NODE_COLORS)) {
      items.push({ label: `Colour: ${name}`, action: () => app.cmd("Colour node", () => { for (const id of app.selection) { const n = getNode(graph, id); if (!n) continue; if (c) n.bgcolor = c; else delete n.bgcolor; } }) });
    }
    items.push({ separator: true }, { label: "Remove", shortcut: "Del", action: () => app.deleteSelection() });
    return items;
  }

  /** Open or save the first image a node shows. */
  imageItems(node) {
    const images = this.app.imageUrls(node);
    if (!images.length) return [];
    const app = this.app;
    const maskable = app.runtime.outputs[node.id] && app.runtime.outputs[node.id].images ? [] : [{ label: "Open in mask editor", action: () => app.maskEditor.open(node) }];
    return [
      { label: "View image", action: () => app.viewer.openForNode(node) },
      ...maskable,
      { label: "Open image", action: () => window.open(images[0], "_blank", "noopener") },
      { label: "Save image", action: () => {
        const a = document.createElement("a");
        a.href = images[0];
        a.download = new URL(images[0], location.href).searchParams.get("filename") || "image.png";
        document.body.appendChild(a);
        a.click();
        a.remove();
      } },
      { separator: true },
    ];
  }

  /** Turn widgets into sockets (to drive them by a link) and back. */
  convertItems(node, def) {
    if (!def) return [];
    const app = this.app;
    const graph = this.graph;
    const items = [];
    const convertible = def.inputs.filter((i) => i.widget && !i.dynamic); // a DynamicCombo's choice stays a widget
    const toInput = convertible.filter((i) => !node.inputs.some((s) => s.widget === i.name));
    const toWidget = node.inputs.filter((s) => s.widget);
    if (toInput.length || toWidget.length) items.push({ separator: true });
    for (const i of toInput) {
      items.push({ label: `Convert ${i.name} to input`, action: () => app.cmd(`Convert ${i.name} to input`, () => convertWidgetToInput(graph, node, def, i.name)) });
    }
    for (const s of toWidget) {
      items.push({ label: `Convert ${s.widget} to widget`, action: () => app.cmd(`Convert ${s.widget} to widget`, () => convertInputToWidget(graph, node, s.widget)) });
    }
    return items;
  }

  groupMenu(g) {
    const app = this.app;
    const graph = this.graph;
    return [
      { label: "Rename group", action: () => this.ia.widgets.renameGroup(g) },
      { label: "Fit group to nodes", action: () => app.fitGroup(g) },
      ...Object.entries(GROUP_COLORS)
        .map(([name, c]) => ({ label: `Colour: ${name}`, checked: g.color === c, action: () => app.cmd("Colour group", () => { g.color = c; }) })),
      { label: "Remove group", action: () => app.cmd("Remove group", () => { graph.groups.splice(graph.groups.indexOf(g), 1); }) },
    ];
  }

  linkMenu(onLink) {
    const app = this.app;
    const graph = this.graph;
    return [
      { label: "Add reroute", action: () => app.insertReroute(onLink.link, onLink.point) },
      { label: "Delete link", action: () => app.cmd("Delete link", () => removeLink(graph, onLink.link.id)) },
    ];
  }

  canvasMenu(e, pos) {
    const app = this.app;
    const graph = this.graph;
    return [
      { label: "Add node…", shortcut: "dbl-click", action: () => app.openSearch(e.clientX, e.clientY, pos) },
      { label: "Browse nodes by category ▸", action: () => this.categoryMenu(e.clientX, e.clientY, pos, "") },
      { label: "Add group", action: () => app.addGroup(pos) },
      { label: "Add group for selected nodes", shortcut: "Ctrl+G", disabled: !app.selection.size, action: () => app.groupSelection() },
      { label: "Add reroute", action: () => app.addNodeByType("Reroute", pos) },
      { label: "Add note", action: () => app.addNodeByType("Note", pos) },
      { label: "Add Markdown note", action: () => app.addNodeByType("MarkdownNote", pos) },
      { separator: true },
      { label: "Paste", shortcut: "Ctrl+V", action: () => app.paste(pos) },
      { label: "Select all", shortcut: "Ctrl+A", action: () => app.setSelection(graph.nodes.map((n) => n.id)) },
      { label: "Fit view", shortcut: ".", action: () => app.fitView() },
    ];
  }

  /** A menu of one level of the category tree: sub-categories first, then its nodes. */
  categoryMenu(x, y, pos, prefix) {
    const app = this.app;
    const subs = new Set();
    const here = [];
    for (const def of Object.values(app.defs)) {
      const cat = def.category || "misc";
      if (prefix && cat !== prefix && !cat.startsWith(`${prefix}/`)) continue;
      if (cat === prefix || (!prefix && !cat)) here.push(def);
      else subs.add((prefix ? cat.slice(prefix.length + 1) : cat).split("/")[0]);
    }
    const items = [];
    if (prefix) {
      const up = prefix.includes("/") ? prefix.slice(0, prefix.lastIndexOf("/")) : "";
      items.push({ label: "◂ back", action: () => this.categoryMenu(x, y, pos, up) }, { separator: true });
    }
    for (const sub of [...subs].sort()) {
      const full = prefix ? `${prefix}/${sub}` : sub;
      items.push({ label: `${sub} ▸`, action: () => this.categoryMenu(x, y, pos, full) });
    }
    if (subs.size && here.length) items.push({ separator: true });
    for (const def of here.sort((a, b) => a.display_name.localeCompare(b.display_name))) {
      items.push({ label: def.display_name, action: () => app.addNode(def.name, pos) });
    }
    showMenu(x, y, items, { filter: items.length > 14, className: "category-menu" });
  }
}
