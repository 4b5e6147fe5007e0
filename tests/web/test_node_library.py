"""The node library as a user works it: open it from the top bar, unfold categories, hover a
node for its card, drag it onto the canvas, search and add with the keyboard; the same card
in the search menu for the highlighted entry; and the frame time of a 500-node graph with the
library open."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from tests.web.helpers import canvas_point, new_tab, state

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def centre(page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    assert box, f"{selector} is not on the page"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def world_at(page, x: float, y: float) -> list[float]:
    """The world point under client point (x, y) (read from the renderer, nothing changed)."""
    return page.evaluate(
        f"""() => {{ const r = window.weft.renderer, rect = r.canvas.getBoundingClientRect();
                    return r.toWorld({x} - rect.left, {y} - rect.top); }}"""
    )


def open_library(page) -> None:
    page.click("#library-toggle")
    page.wait_for_selector("#node-library:not([hidden]) .lib-cat")


def test_tree_card_and_drag_onto_canvas(page, screenshots):
    new_tab(page)
    open_library(page)
    assert page.get_attribute("#library-toggle", "aria-pressed") == "true"
    top = page.eval_on_selector_all("#node-library .lib-cat", "rows => rows.map(r => r.dataset.path)")
    assert {"utils", "loaders", "sampling"} <= set(top) and not any("/" in path for path in top)
    assert page.locator("#node-library .lib-node").count() == 0  # folded: categories only

    page.click("#node-library .lib-cat[data-path='utils']")
    page.click("#node-library .lib-cat[data-path='utils/string']")
    row = "#node-library .lib-node[data-type='StringConcatenate']"
    page.wait_for_selector(row)
    assert page.get_attribute("#node-library .lib-cat[data-path='utils']", "aria-expanded") == "true"

    # hover: the card lists inputs with their types, outputs, description and module
    page.hover(row)
    card = page.locator(".node-card.library-card")
    card.wait_for(state="visible")
    assert card.locator(".card-title").inner_text() == "Concatenate"
    assert card.locator(".card-desc").inner_text().startswith("Joins string_a and string_b")
    inputs = card.locator(".card-inputs li").all_inner_texts()
    assert [i.split()[:2] for i in inputs] == [["string_a", "STRING"], ["string_b", "STRING"], ["delimiter", "STRING"]]
    assert card.locator(".card-outputs li").all_inner_texts() == ["STRING\nSTRING"]
    source = card.locator(".card-source").inner_text()
    assert source.startswith("pack weft ") and source.endswith(" · nodes")
    page.screenshot(path=str(screenshots / "node-library-card.png"))

    # drag the row onto the canvas: the node appears where it is dropped
    before = len(state(page)["nodes"])
    drop = canvas_point(page, 0.6, 0.45)
    page.mouse.move(*centre(page, row))
    page.mouse.down()
    page.mouse.move(drop[0] - 40, drop[1] - 20, steps=6)
    assert page.locator(".drag-ghost").inner_text() == "Concatenate"  # a label follows the pointer
    page.mouse.move(*drop, steps=4)
    page.mouse.up()
    page.wait_for_function(f"() => window.weft.state.nodes.length === {before + 1}")
    node = state(page)["nodes"][-1]
    assert node["type"] == "StringConcatenate"
    expected = world_at(page, *drop)
    assert abs(node["pos"][0] - expected[0]) < 1.5 and abs(node["pos"][1] - expected[1]) < 1.5
    assert page.locator(".drag-ghost").count() == 0
    assert not card.is_visible()

    # a drop back onto the panel adds nothing; one undo removes the dropped node
    page.mouse.move(*centre(page, row))
    page.mouse.down()
    page.mouse.move(*centre(page, "#node-library .library-search"), steps=5)
    page.mouse.up()
    assert len(state(page)["nodes"]) == before + 1
    page.mouse.click(*canvas_point(page, 0.9, 0.9))
    page.keyboard.press("Control+z")
    assert len(state(page)["nodes"]) == before

    # folding a category hides its nodes; the dock button closes the panel
    page.click("#node-library .lib-cat[data-path='utils']")
    assert page.locator(row).count() == 0
    page.click("#library-toggle")
    assert page.locator("#node-library").is_hidden()


def test_search_and_keyboard(page, screenshots):
    new_tab(page)
    open_library(page)
    page.keyboard.type("concat")  # the search box has the focus when the panel opens
    first = page.locator("#node-library .lib-node").first
    assert first.get_attribute("data-type") == "StringConcatenate"
    assert "utils/string" in first.inner_text()
    assert "active" in (first.get_attribute("class") or "")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.weft.state.nodes.length === 1")
    assert state(page)["nodes"][0]["type"] == "StringConcatenate"

    page.locator("#node-library .library-search").fill("")
    page.keyboard.type("int math")
    page.keyboard.press("ArrowDown")
    rows = page.locator("#node-library .lib-node")
    second = rows.nth(1).get_attribute("data-type")
    assert "active" in (rows.nth(1).get_attribute("class") or "")
    assert page.locator(".node-card.library-card").get_attribute("data-type") == second
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.weft.state.nodes.length === 2")
    assert state(page)["nodes"][1]["type"] == second
    page.screenshot(path=str(screenshots / "node-library-search.png"))

    page.keyboard.type("zzzqqq")
    assert page.locator("#node-library .lib-empty").is_visible()
    page.keyboard.press("Escape")  # clears the search: the tree is back
    assert page.locator("#node-library .library-search").input_value() == ""
    page.wait_for_selector("#node-library .lib-cat")
    page.keyboard.press("Escape")  # closes the panel
    assert page.locator("#node-library").is_hidden()


def test_search_menu_shows_the_card_of_the_highlighted_entry(page, screenshots):
    new_tab(page)
    page.mouse.dblclick(*canvas_point(page, 0.3, 0.3))
    page.wait_for_selector(".search-menu:not([hidden]) .search-input")
    page.keyboard.type("MathInt")
    card = page.locator(".node-card.search-card")
    card.wait_for(state="visible")
    assert card.get_attribute("data-type") == "MathInt"
    text = card.inner_text()
    assert "operation" in text and "COMBO" in text and "INT" in text
    menu = page.locator(".search-menu").bounding_box()
    box = card.bounding_box()
    assert box["x"] >= menu["x"] + menu["width"] - 1 or box["x"] + box["width"] <= menu["x"] + 1  # beside, not over
    page.screenshot(path=str(screenshots / "search-card.png"))
    page.keyboard.press("ArrowDown")
    second = page.locator(".search-results li").nth(1).get_attribute("data-type")
    assert card.get_attribute("data-type") == second
    page.keyboard.press("Escape")
    assert not card.is_visible()


def test_frame_time_500_nodes_with_library_open(page, screenshots):
    """The 500-node pan of test_canvas.py with the library open and a category unfolded."""
    new_tab(page)
    open_library(page)
    page.click("#node-library .lib-cat[data-path='utils']")
    page.evaluate(
        """async () => {
            const app = window.weft;
            const {connect} = await import("./js/state.js");
            app.cmd("Build benchmark graph", () => {
                let prev = null;
                for (let i = 0; i < 500; i++) {
                    const type = i % 5 === 0 ? "PrimitiveInt" : (i % 5 === 4 ? "PreviewAny" : "MathInt");
                    const n = app.addNodeRaw(app.defs[type], [(i % 25) * 320, Math.floor(i / 25) * 260]);
                    if (prev && type !== "PrimitiveInt") connect(app.state, prev.id, 0, n.id, 0);
                    prev = type === "PreviewAny" ? null : n;
                }
            });
        }"""
    )
    result = page.evaluate(
        """async () => {
            const app = window.weft, r = app.renderer;
            const out = [];
            for (const scale of [1, 0.6, 0.35]) {
                app.state.extra.ds = {scale, offset: [0, 0]};
                const intervals = [], draws = [];
                let last = null;
                for (let i = 0; i < 120; i++) {
                    await new Promise(res => requestAnimationFrame(res));
                    const now = performance.now();
                    if (last !== null) intervals.push(now - last);
                    last = now;
                    const ds = app.state.extra.ds, dir = i < 60 ? -1 : 1;
                    ds.offset = [ds.offset[0] + dir * 14 / scale, ds.offset[1] + dir * 6 / scale];
                    const t0 = performance.now();
                    r.draw();
                    draws.push(performance.now() - t0);
                }
                const med = a => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
                out.push({scale, frame_median_ms: med(intervals), draw_median_ms: med(draws), visible: r.visibleCount});
            }
            return out;
        }"""
    )
    page.screenshot(path=str(screenshots / "bench-500-nodes-library-open.png"))
    machine = f"{platform.machine()} ({os.cpu_count()} cores), Chromium headless, library open"
    for r in result:
        print(
            f"library open, 500 nodes at zoom {r['scale']}: median frame {r['frame_median_ms']:.2f} ms, median draw {r['draw_median_ms']:.2f} ms"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "frame-time-library-open.json").write_text(
        json.dumps({"machine": machine, "results": result}, indent=2)
    )
    assert page.locator("#node-library").is_visible()
    assert all(r["frame_median_ms"] > 0 and r["visible"] > 0 for r in result)
