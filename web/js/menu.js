// Floating menus (context menus and combo pickers), plain DOM.

let open = [];

export function closeMenus() {
  for (const m of open) m.remove();
  open = [];
}

/** items: [{label, action, shortcut, checked, disabled} | {separator: true}] */
export function showMenu(x, y, items, { filter = false, className = "", minWidth = 0 } = {}) {
  closeMenus();
  const menu = document.createElement("div");
  menu.className = `menu ${className}`.trim();
  menu.setAttribute("role", "menu");
  if (minWidth) menu.style.minWidth = `${Math.round(minWidth)}px`;
  let input = null;
  const list = document.createElement("div");
  list.className = "menu-items";
  if (filter) {
    input = document.createElement("input");
    input.className = "menu-filter";
    input.placeholder = "Filter…";
    menu.appendChild(input);
  }
  menu.appendChild(list);
  const rows = [];
  for (const item of items) {
    if (item.separator) {
      const hr = document.createElement("div");
      hr.className = "menu-sep";
      list.appendChild(hr);
      continue;
    }
    const row = document.createElement("div");
    row.className = "menu-item";
    row.setAttribute("role", "menuitem");
    if (item.disabled) row.classList.add("disabled");
    if (item.checked) row.classList.add("checked");
    const label = document.createElement("span");
    label.textContent = item.label;
    row.appendChild(label);
    if (item.shortcut) {
      const sc = document.createElement("span");
      sc.className = "shortcut";
      sc.textContent = item.shortcut;
      row.appendChild(sc);
    }
    row.addEventListener("mousedown", (e) => e.preventDefault());
    row.addEventListener("click", () => {
      if (item.disabled) return;
      closeMenus();
      item.action && item.action();
    });
    list.appendChild(row);
    rows.push({ row, item });
  }
  document.body.appendChild(menu);
  const w = menu.offsetWidth, h = menu.offsetHeight;
  menu.style.left = `${Math.max(2, Math.min(x, window.innerWidth - w - 4))}px`;
  menu.style.top = `${Math.max(2, Math.min(y, window.innerHeight - h - 4))}px`;
  open.push(menu);
  if (input) {
    let active = -1;
    const visible = () => rows.filter((r) => !r.row.hidden);
    input.addEventListener("input", () => {
      const q = input.value.toLowerCase();
      for (const r of rows) r.row.hidden = !r.item.label.toLowerCase().includes(q);
      active = -1;
    });
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();
      const vis = visible();
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        active = Math.max(0, Math.min(vis.length - 1, active + (e.key === "ArrowDown" ? 1 : -1)));
        vis.forEach((r, i) => r.row.classList.toggle("active", i === active));
        vis[active] && vis[active].row.scrollIntoView({ block: "nearest" });
        e.preventDefault();
      } else if (e.key === "Enter") {
        const r = vis[Math.max(0, active)];
        if (r) r.row.click();
      } else if (e.key === "Escape") closeMenus();
    });
    setTimeout(() => input.focus(), 0);
    const checked = rows.find((r) => r.item.checked);
    if (checked) checked.row.scrollIntoView({ block: "nearest" });
  }
  return menu;
}

document.addEventListener("pointerdown", (e) => {
  if (!e.target.closest || !e.target.closest(".menu")) closeMenus();
}, true);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") closeMenus();
});
