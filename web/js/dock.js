// The left dock: one side panel at a time (the node library, the model browser), its toolbar
// button lit while it is open; and dragging an entry of such a panel onto the canvas.

const docks = [];

/** Make `el` a dock panel toggled by `button`; `onOpen` runs each time it opens. */
export function registerDock(el, button, onOpen = null) {
  docks.push({ el, button, onOpen });
  el.hidden = true;
  button.setAttribute("aria-pressed", "false");
  button.addEventListener("click", () => setDock(el.hidden ? el : null));
}

/** Open `el` (closing the other dock panels), or close them all with null. */
export function setDock(el) {
  for (const d of docks) {
    const on = d.el === el;
    const was = !d.el.hidden;
    d.el.hidden = !on;
    d.button.classList.toggle("on", on);
    d.button.setAttribute("aria-pressed", String(on));
    if (on && !was && d.onOpen) d.onOpen();
  }
  document.getElementById("stage").classList.toggle("dock-open", !!el);
}

/**
 * Follow a drag that starts on a panel entry (a pointerdown event): a label follows the
 * pointer; released over the canvas, onDrop gets the world point under it. A press that
 * does not move is a click (onClick). Returns nothing; listeners go when the button is released.
 */
export function dragToCanvas(app, down, label, onDrop, onClick = null) {
  if (down.button !== 0) return;
  down.preventDefault(); // no text selection while dragging
  const start = [down.clientX, down.clientY];
  let ghost = null;
  const move = (e) => {
    if (!ghost && Math.hypot(e.clientX - start[0], e.clientY - start[1]) < 5) return;
    if (!ghost) {
      ghost = document.createElement("div");
      ghost.className = "drag-ghost";
      ghost.textContent = label;
      document.body.appendChild(ghost);
    }
    ghost.style.left = `${e.clientX + 12}px`;
    ghost.style.top = `${e.clientY + 8}px`;
  };
  const up = (e) => {
    window.removeEventListener("pointermove", move);
    window.removeEventListener("pointerup", up);
    if (!ghost) {
      if (onClick) onClick();
      return;
    }
    ghost.remove();
    const canvas = app.renderer.canvas;
    if (document.elementFromPoint(e.clientX, e.clientY) !== canvas) return; // dropped on a panel
    const rect = canvas.getBoundingClientRect();
    onDrop(app.renderer.toWorld(e.clientX - rect.left, e.clientY - rect.top));
    canvas.focus({ preventScroll: true }); // the keys that follow (Delete, Ctrl+Z) are for the canvas
  };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
}

/** The world point in the middle of the view (where a clicked entry's node goes). */
export function viewCentre(app) {
  const r = app.renderer;
  return r.toWorld(r.width / 2 - 100, r.height / 2 - 60);
}
