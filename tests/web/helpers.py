"""What a user does in the editor, as Playwright steps. Every step goes through the UI
(mouse, keyboard, menus); ``window.weft`` is only read, to know where things are drawn."""

from __future__ import annotations

import json
from typing import Any


def state(page) -> dict[str, Any]:
    return page.evaluate("JSON.parse(JSON.stringify(window.weft.state))")


def node_ids(page) -> list[int]:
    return [n["id"] for n in state(page)["nodes"]]


def node(page, node_id: int) -> dict[str, Any]:
    return next(n for n in state(page)["nodes"] if n["id"] == node_id)


def new_tab(page) -> None:
    page.click("#tab-add")
    page.wait_for_function("() => window.weft.state.nodes.length === 0")


def add_node(page, query: str, at: tuple[float, float], expect_type: str | None = None) -> int:
    """Double-click the canvas, type in the search menu, press Enter; returns the new node's id."""
    before = set(node_ids(page))
    page.mouse.dblclick(*at)
    page.wait_for_selector(".search-menu:not([hidden]) .search-input")
    page.keyboard.type(query)
    if expect_type:
        first = page.locator(".search-results li").first
        assert first.get_attribute("data-type") == expect_type, page.locator(".search-results").inner_text()
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => window.weft.state.nodes.length === {len(before) + 1}")
    (new,) = set(node_ids(page)) - before
    return new


def socket(page, node_id: int, kind: str, slot: int) -> tuple[float, float]:
    return tuple(page.evaluate(f"window.weft.socketClientPos({node_id}, {json.dumps(kind)}, {slot})"))


def widget_center(page, node_id: int, name: str) -> tuple[float, float]:
    r = page.evaluate(f"window.weft.widgetClientRect({node_id}, {json.dumps(name)})")
    assert r, f"node {node_id} shows no widget {name}"
    return r["left"] + r["width"] / 2, r["top"] + r["height"] / 2


def title(page, node_id: int) -> tuple[float, float]:
    return tuple(page.evaluate(f"window.weft.titleClientPos({node_id})"))


def drag(
    page, start: tuple[float, float], end: tuple[float, float], steps: int = 8, modifiers: list[str] | None = None
) -> None:
    for m in modifiers or []:
        page.keyboard.down(m)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()
    for m in modifiers or []:
        page.keyboard.up(m)


def wire(page, src: int, out_slot: int, dst: int, in_slot: int) -> None:
    drag(page, socket(page, src, "output", out_slot), socket(page, dst, "input", in_slot))


def set_text_widget(page, node_id: int, name: str, text: str) -> None:
    """Click a text or number widget, type into the editor that opens, confirm."""
    x, y = widget_center(page, node_id, name)
    page.mouse.click(x, y)
    editor = page.locator(f".widget-editor[data-widget='{name}']")
    editor.wait_for()
    editor.fill(text)
    if editor.evaluate("el => el.tagName") == "TEXTAREA":
        editor.evaluate("el => el.blur()")  # multiline text is kept when the editor loses focus
    else:
        editor.press("Enter")
    editor.wait_for(state="detached")


def links(page) -> list[tuple[int, int, int, int]]:
    return [(k["origin_id"], k["origin_slot"], k["target_id"], k["target_slot"]) for k in state(page)["links"]]


def wait_output(page, node_id: int, key: str, timeout: float = 30000) -> Any:
    page.wait_for_function(
        f"() => {{ const o = window.weft.runtime.outputs[{node_id}]; return o && o[{json.dumps(key)}] && o[{json.dumps(key)}].length; }}",
        timeout=timeout,
    )
    return page.evaluate(f"window.weft.runtime.outputs[{node_id}][{json.dumps(key)}]")


def canvas_point(page, fx: float, fy: float) -> tuple[float, float]:
    """A point of the canvas, as fractions of its width and height."""
    box = page.locator("#canvas").bounding_box()
    return box["x"] + box["width"] * fx, box["y"] + box["height"] * fy
