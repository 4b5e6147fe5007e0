// Small DOM builders shared by the panels (gallery, image viewer, mask editor, settings, workflows).

/** An element with an optional class and text (set as text, never parsed as HTML). */
export function el(tag, className = "", text = "") {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}
