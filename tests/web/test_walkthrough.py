"""What a user's walk-through of the canvas found (issue 14), each driven as the user did it:
fit view and the default workflow show every node whole, the minimap shows only the open
tab's nodes, error panels and tooltips stay with their tab, red outlines go once the input is
fixed, a link dropped on a widget or a covered socket connects (or says why not), new nodes
are wide enough for their values, and Markdown notes show rendered without running any HTML."""

from __future__ import annotations

import json

from tests.web.conftest import _open_canvas
from tests.web.helpers import (
    add_node,
    canvas_point,
    drag,
    links,
    new_tab,
    node,
    socket,
    state,
    title,
    widget_center,
    wire,
)
from tests.web.test_errors import red_outline_pixels


def next_frames(page, count: int = 2) -> None:
    page.evaluate(
        f"new Promise(r => {{ let n = {count}; const f = () => --n ? requestAnimationFrame(f) : r(); requestAnimationFrame(f); }})"
    )


def node_boxes(page) -> dict[int, list[float]]:
    """Every node's box as drawn (title bar to bottom edge), in page coordinates."""
    return {
        int(k): v
        for k, v in page.evaluate(
            """() => {
                const app = window.weft, r = app.renderer, c = r.canvas.getBoundingClientRect(), out = {};
                for (const n of app.state.nodes) {
                    const lay = r.layout(n);
                    const [x0, y0] = r.toScreen(n.pos[0], n.pos[1] - 30), [x1, y1] = r.toScreen(n.pos[0] + lay.w, n.pos[1] + lay.h);
                    out[n.id] = [c.left + x0, c.top + y0, c.left + x1, c.top + y1];
                }
                return out;
            }"""
        ).items()
    }


def box_of(page, selector: str) -> list[float]:
    b = page.locator(selector).bounding_box()
    return [b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]]


def inside(box, area) -> bool:
    return box[0] >= area[0] and box[1] >= area[1] and box[2] <= area[2] and box[3] <= area[3]


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def open_menu_item(page, label: str) -> None:
    page.click("#menu-button")
    page.click(f".menu-item:has-text('{label}')")


def toasts(page) -> list[str]:
    return page.evaluate("[...document.querySelectorAll('#toasts .toast')].map(t => t.textContent)")


# ---- 1. fit view --------------------------------------------------------------------------


def test_fit_view_shows_nodes_made_in_the_ui_whole(page, screenshots):
    new_tab(page)
    add_node(page, "primitive int", canvas_point(page, 0.45, 0.08), expect_type="PrimitiveInt")
    tall = add_node(page, "concatenate", canvas_point(page, 0.45, 0.8), expect_type="StringConcatenate")
    page.keyboard.press(".")
    canvas = box_of(page, "#canvas")
    boxes = node_boxes(page)
    assert all(inside(b, canvas) for b in boxes.values()), (boxes, canvas)
    assert boxes[tall][3] - boxes[tall][1] > 200  # two text boxes: the bottom node is tall
    # with the node library open, fit view uses the canvas the panel leaves free
    page.click("#library-toggle")
    page.locator("#node-library").wait_for()
    page.keyboard.press(".")
    free = [box_of(page, "#node-library")[2], canvas[1], canvas[2], canvas[3]]
    boxes = node_boxes(page)
    assert all(inside(b, free) for b in boxes.values()), (boxes, free)
    page.screenshot(path=str(screenshots / "fit-view-library-open.png"))


# ---- 2. minimap ---------------------------------------------------------------------------


def minimap_stray_pixels(page) -> int:
    """Pixels inside the minimap's view rectangle that are not the map's background: with an
    empty graph there must be none (no node, no old view rectangle)."""
    return page.evaluate(
        """() => {
            const r = window.weft.renderer, m = r.minimap, t = r.minimapTransform, d = r.dpr;
            const [vx0, vy0, vx1, vy1] = r.view;
            const x0 = Math.ceil((vx0 * t.s + t.ox) * d) + 4, y0 = Math.ceil((vy0 * t.s + t.oy) * d) + 4;
            const x1 = Math.floor((vx1 * t.s + t.ox) * d) - 4, y1 = Math.floor((vy1 * t.s + t.oy) * d) - 4;
            const px = m.getContext("2d").getImageData(x0, y0, x1 - x0, y1 - y0).data;
            let stray = 0;
            for (let i = 0; i < px.length; i += 4) {
                if (Math.abs(px[i] - 20) > 3 || Math.abs(px[i + 1] - 21) > 3 || Math.abs(px[i + 2] - 24) > 3) stray++;
            }
            return stray;
        }"""
    )


def test_minimap_shows_only_the_open_tabs_nodes(page, screenshots):
    assert len(state(page)["nodes"]) > 1  # the first tab: the default workflow, on the minimap
    new_tab(page)
    next_frames(page)
    assert minimap_stray_pixels(page) == 0  # nothing left of the other tab's nodes
    added = add_node(page, "MathInt", canvas_point(page, 0.7, 0.7), expect_type="MathInt")
    next_frames(page)
    assert minimap_stray_pixels(page) > 0  # the node is on the map
    page.mouse.click(*title(page, added))
    page.keyboard.press("Delete")
    assert state(page)["nodes"] == []
    next_frames(page)
    assert minimap_stray_pixels(page) == 0  # and gone from it with the node
    page.locator("#minimap").screenshot(path=str(screenshots / "minimap-empty-tab.png"))


# ---- 3. error panel and tooltips per tab ----------------------------------------------------


def refused_length_node(page) -> int:
    """A new tab with a Length node whose required input is an unwired socket, queued: refused."""
    new_tab(page)
    length = add_node(page, "string length", canvas_point(page, 0.2, 0.3), expect_type="StringLength")
    show = add_node(page, "preview as text", canvas_point(page, 0.55, 0.3), expect_type="PreviewAny")
    drag(page, socket(page, length, "output", 0), title(page, show))
    page.mouse.click(*title(page, length), button="right")
    page.click(".menu-item:has-text('Convert string to input')")
    page.click("#queue-button")
    page.wait_for_selector(f"#error-panel:not([hidden]) .error-item[data-node='{length}']")
    return length


def test_error_panel_and_tooltip_stay_with_their_tab(page, screenshots):
    length = refused_length_node(page)
    errored_tab = page.evaluate("window.weft.active")
    page.mouse.move(*canvas_point(page, 0.9, 0.15))  # over empty canvas, then over the node's title
    page.mouse.move(*title(page, length))
    tip = page.locator(".tooltip:not([hidden])")
    tip.wait_for()
    assert "number of characters" in tip.inner_text()
    page.click("#tab-add")  # another workflow: its own (empty) run state
    page.wait_for_function("() => window.weft.state.nodes.length === 0")
    assert page.locator("#error-panel").is_hidden()
    assert page.locator(".tooltip:not([hidden])").count() == 0
    assert page.evaluate("Object.keys(window.weft.runtime.errors).length") == 0
    page.screenshot(path=str(screenshots / "error-panel-other-tab.png"))
    page.click(f".tab[data-index='{errored_tab}']")  # back: its panel and outline are there again
    item = page.locator(f"#error-panel:not([hidden]) .error-item[data-node='{length}']")
    item.wait_for()
    assert "Required input is missing" in item.inner_text()
    assert red_outline_pixels(page, length) > 0
    page.click("#error-panel .close")  # closed, it stays closed across switches
    page.click("#tab-add")
    page.click(f".tab[data-index='{errored_tab}']")
    assert page.locator("#error-panel").is_hidden()


# ---- 4. red outlines go when the input is fixed ----------------------------------------------


def test_error_outline_clears_when_the_input_is_fixed(page, screenshots):
    new_tab(page)
    concat = add_node(page, "concatenate", canvas_point(page, 0.35, 0.25), expect_type="StringConcatenate")
    show = add_node(page, "preview as text", canvas_point(page, 0.7, 0.25), expect_type="PreviewAny")
    drag(page, socket(page, concat, "output", 0), title(page, show))
    for name in ("string_a", "string_b"):
        page.mouse.click(*title(page, concat), button="right")
        page.click(f".menu-item:has-text('Convert {name} to input')")
    page.click("#queue-button")
    page.wait_for_selector(f"#error-panel:not([hidden]) .error-item[data-node='{concat}']")
    assert sorted(page.evaluate(f"Object.keys(window.weft.runtime.errors[{concat}].inputs)")) == [
        "string_a",
        "string_b",
    ]
    assert red_outline_pixels(page, concat) > 0
    text = add_node(page, "primitive string", canvas_point(page, 0.05, 0.7), expect_type="PrimitiveString")
    wire(page, text, 0, concat, 0)  # string_a fixed: its mark goes, the node still has a problem
    assert page.evaluate(f"Object.keys(window.weft.runtime.errors[{concat}].inputs)") == ["string_b"]
    assert red_outline_pixels(page, concat) > 0
    panel = page.inner_text("#error-panel")
    assert "string_b" in panel and "string_a" not in panel
    wire(page, text, 0, concat, 1)  # string_b fixed: no problem left, no outline, no panel
    assert page.evaluate("Object.keys(window.weft.runtime.errors).length") == 0
    assert red_outline_pixels(page, concat) == 0
    assert page.locator("#error-panel").is_hidden()
    page.screenshot(path=str(screenshots / "error-fixed.png"))
    # deleting the node a problem was about takes it away too
    length = refused_length_node(page)
    assert red_outline_pixels(page, length) > 0
    page.mouse.click(*title(page, length))
    page.keyboard.press("Delete")
    assert page.evaluate("Object.keys(window.weft.runtime.errors).length") == 0
    assert page.locator("#error-panel").is_hidden()


# ---- 5. links dropped on widgets and covered sockets -------------------------------------------


def test_link_dropped_on_a_widget_connects_to_a_fitting_input(page):
    new_tab(page)
    a = add_node(page, "primitive int", canvas_point(page, 0.08, 0.3), expect_type="PrimitiveInt")
    math = add_node(page, "MathInt", canvas_point(page, 0.5, 0.3), expect_type="MathInt")
    # "operation" is a list of names, not an INT: the link takes the first INT widget, a
    drag(page, socket(page, a, "output", 0), widget_center(page, math, "operation"))
    assert links(page) == [(a, 0, math, 0)]
    assert node(page, math)["inputs"] == [{"name": "a", "type": "INT", "widget": "a"}]
    # dropped on a widget of its type, that widget becomes the input
    b = add_node(page, "primitive int", canvas_point(page, 0.08, 0.7), expect_type="PrimitiveInt")
    drag(page, socket(page, b, "output", 0), widget_center(page, math, "b"))
    assert links(page) == [(a, 0, math, 0), (b, 0, math, 1)]
    # a node with nothing that takes the type says so
    length = add_node(page, "string length", canvas_point(page, 0.5, 0.75), expect_type="StringLength")
    drag(page, socket(page, b, "output", 0), widget_center(page, length, "string"))
    page.wait_for_function(
        "() => [...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.includes('no input that takes INT'))"
    )
    assert node(page, length)["inputs"] == []


def test_link_dropped_on_a_covered_socket_connects_there(page, screenshots):
    new_tab(page)
    show = add_node(page, "preview as text", canvas_point(page, 0.5, 0.5), expect_type="PreviewAny")
    src = add_node(page, "primitive int", canvas_point(page, 0.15, 0.15), expect_type="PrimitiveInt")
    # move the Int node (drawn on top, it was added last) over the preview's input socket
    sx, sy = socket(page, show, "input", 0)
    scale = state(page)["extra"]["ds"]["scale"]
    tx, ty = title(page, src)
    drag(page, (tx, ty), (sx - 40 * scale, sy - 65 * scale))
    (cx0, cy0, cx1, cy1) = node_boxes(page)[src]
    assert cx0 < sx < cx1 and cy0 < sy < cy1  # the socket is under the Int node's body
    page.mouse.click(*canvas_point(page, 0.9, 0.1))  # deselect
    drag(page, socket(page, src, "output", 0), (sx, sy))
    assert links(page) == [(src, 0, show, 0)]
    page.screenshot(path=str(screenshots / "covered-socket-linked.png"))


def test_link_that_would_make_a_loop_says_so(page):
    new_tab(page)
    first = add_node(page, "MathInt", canvas_point(page, 0.1, 0.3), expect_type="MathInt")
    second = add_node(page, "MathInt", canvas_point(page, 0.5, 0.3), expect_type="MathInt")
    drag(page, socket(page, first, "output", 0), widget_center(page, second, "a"))
    assert links(page) == [(first, 0, second, 0)]
    drag(page, socket(page, second, "output", 0), widget_center(page, first, "b"))
    page.wait_for_function(
        "() => [...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.includes('loop'))"
    )
    assert links(page) == [(first, 0, second, 0)]
    assert node(page, first)["inputs"] == []  # no widget left turned into an unwired input


# ---- 6. new nodes fit their values ---------------------------------------------------------------


def cut_texts(page) -> list[str]:
    """The texts drawn shortened with "…" in one fresh frame of the canvas."""
    return page.evaluate(
        """() => {
            const r = window.weft.renderer;
            r.truncCache.clear();
            r.draw();
            return [...r.truncCache].filter(([, v]) => v.endsWith("…")).map(([k]) => k.split("|").slice(2).join("|"));
        }"""
    )


def test_new_nodes_are_wide_enough_for_their_labels_and_values(page, screenshots):
    new_tab(page)
    added = [
        add_node(page, "KSampler", canvas_point(page, 0.02, 0.05), expect_type="KSampler"),
        add_node(page, "load checkpoint", canvas_point(page, 0.4, 0.05), expect_type="CheckpointLoaderSimple"),
        add_node(page, "conditioning concat", canvas_point(page, 0.4, 0.45), expect_type="ConditioningConcat"),
        add_node(page, "primitive int", canvas_point(page, 0.72, 0.05), expect_type="PrimitiveInt"),
        add_node(page, "controlnet loader", canvas_point(page, 0.4, 0.7), expect_type="ControlNetLoader"),
    ]
    assert cut_texts(page) == []
    widths = [node(page, n)["size"][0] for n in added]
    assert all(200 <= w <= 560 for w in widths), widths
    page.screenshot(path=str(screenshots / "new-nodes-fit.png"))


# ---- 7. Markdown notes ----------------------------------------------------------------------------

NOTE = """# Notes
Some **bold**, *italic* and `code`.
<img src=x onerror="window.__pwned = 1">

- first
- [docs](https://example.com/docs) and [bad](javascript:window.__pwned=3)

<script>window.__pwned = 2</script>"""


def test_markdown_note_shows_rendered_and_safe(page, screenshots):
    new_tab(page)
    note = add_node(page, "markdown note", canvas_point(page, 0.25, 0.2), expect_type="MarkdownNote")
    page.mouse.click(*widget_center(page, note, "text"))
    editor = page.locator(".widget-editor[data-widget='text']")
    editor.wait_for()
    editor.fill(NOTE)
    page.mouse.click(*canvas_point(page, 0.9, 0.9))  # clicking away keeps the text
    editor.wait_for(state="detached")
    assert node(page, note)["widgets_values"] == {"text": NOTE}
    shown = page.locator(f".markdown-note[data-node='{note}']")
    shown.wait_for()
    assert shown.locator("h1").inner_text() == "Notes"
    assert shown.locator("strong").inner_text() == "bold" and shown.locator("em").inner_text() == "italic"
    assert shown.locator("code").inner_text() == "code"
    assert shown.locator("li").count() == 2
    link = shown.locator("a")
    assert link.count() == 1 and link.get_attribute("href") == "https://example.com/docs"
    assert link.get_attribute("rel") == "noopener noreferrer"
    # HTML is text: shown as typed, never an element, never run
    text = shown.inner_text()
    assert '<img src=x onerror="window.__pwned = 1">' in text and "<script>window.__pwned = 2</script>" in text
    assert "[bad](javascript:" in text
    assert shown.locator("img, script, iframe, [onerror]").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    # drawn over its node, within it
    box = box_of(page, f".markdown-note[data-node='{note}']")
    nb = node_boxes(page)[note]
    assert nb[0] <= box[0] and nb[1] <= box[1] and box[2] <= nb[2] + 1 and box[3] <= nb[3] + 1
    page.screenshot(path=str(screenshots / "markdown-note.png"))
    # its corner makes it bigger, and smaller again: the text area follows
    corner = (nb[2] - 4, nb[3] - 4)
    drag(page, corner, (corner[0] + 60, corner[1] + 120))
    taller = box_of(page, f".markdown-note[data-node='{note}']")
    assert taller[3] - taller[1] > box[3] - box[1] + 100
    drag(page, (corner[0] + 56, corner[1] + 116), (corner[0] - 20, corner[1] - 60))
    shorter = box_of(page, f".markdown-note[data-node='{note}']")
    assert shorter[3] - shorter[1] < box[3] - box[1] - 40
    # the prompt leaves it out; another tab does not show it
    assert page.evaluate("window.weft.apiPrompt()") == {}
    page.click("#tab-add")
    next_frames(page)
    assert page.locator(".markdown-note").count() == 0


def test_markdown_note_from_a_comfyui_workflow(page, tmp_path):
    workflow = {
        "last_node_id": 1,
        "last_link_id": 0,
        "nodes": [
            {
                "id": 1,
                "type": "MarkdownNote",
                "pos": [100, 100],
                "size": [420, 220],
                "flags": {},
                "order": 0,
                "mode": 0,
                "inputs": [],
                "outputs": [],
                "properties": {},
                "widgets_values": ["## Read me\n\n1. load a model\n2. queue <b>now</b>"],
            }
        ],
        "links": [],
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
        "version": 0.4,
    }
    path = tmp_path / "with_note.json"
    path.write_text(json.dumps(workflow))
    with page.expect_file_chooser() as chooser:
        open_menu_item(page, "Open")
    chooser.value.set_files(str(path))
    shown = page.locator(".markdown-note[data-node='1']")
    shown.wait_for()
    assert shown.locator("h2").inner_text() == "Read me"
    assert shown.locator("ol li").count() == 2 and "queue <b>now</b>" in shown.inner_text()
    assert not node(page, 1).get("missing")
    assert page.locator("#missing-dialog").count() == 0


# ---- 8. the default workflow in a small window ------------------------------------------------------


def test_default_workflow_fits_a_1366x768_window(browser, browser_thread, web_server, screenshots):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        errors: list[str] = []
        page = _open_canvas(context, web_server.url, errors)
        canvas = box_of(page, "#canvas")
        minimap = box_of(page, "#minimap")
        boxes = node_boxes(page)
        assert len(boxes) > 1
        assert all(inside(b, canvas) and not overlaps(b, minimap) for b in boxes.values()), (boxes, canvas)
        page.screenshot(path=str(screenshots / "default-workflow-1366x768.png"))
        open_menu_item(page, "Load default workflow")  # again, from the menu, in a new tab
        page.wait_for_function("() => window.weft.tabs.length === 2")
        boxes = node_boxes(page)
        assert all(inside(b, canvas) and not overlaps(b, minimap) for b in boxes.values()), (boxes, canvas)
        assert not errors, errors
    finally:
        context.close()


# ---- 9. frame time with the panels open ----------------------------------------------------------


def test_frame_time_500_nodes_with_panels_open(page, screenshots):
    """test_canvas.py's 500-node pan with an error panel, a dock panel (the image gallery, else the
    node library) and the queue panel open, and Markdown notes among the nodes. Prints the figures
    (test-artifacts/frame-time-panels-open.json); no timing assertion (see bench/README.md)."""
    from tests.web.test_canvas import ARTIFACTS, cpu_model

    refused_length_node(page)  # the error panel stays open over the graph built next
    dock = "#images-toggle" if page.locator("#images-toggle").count() else "#library-toggle"
    page.click(dock)
    page.click("#queue-toggle")
    page.evaluate(
        """async () => {
            const app = window.weft;
            const {connect, convertWidgetToInput} = await import("./js/state.js");
            const {VIRTUAL_DEFS} = await import("./js/defaults.js");
            app.cmd("Build benchmark graph", () => {
                const g = app.state;
                let prev = null;
                for (let i = 0; i < 500; i++) {
                    const type = i % 5 === 0 ? "PrimitiveInt" : (i % 5 === 4 ? "PreviewAny" : "MathInt");
                    const n = app.addNodeRaw(app.defs[type], [(i % 25) * 320, 400 + Math.floor(i / 25) * 260]);
                    if (type === "MathInt") convertWidgetToInput(g, n, app.defs.MathInt, "a");
                    if (prev) connect(g, prev.id, 0, n.id, 0);
                    prev = type === "PreviewAny" ? null : n;
                }
                for (let i = 0; i < 12; i++) {
                    const note = app.addNodeRaw(VIRTUAL_DEFS.MarkdownNote, [i * 640 + 160, 420 + (i % 4) * 1300]);
                    note.widgets_values.text = `## Note ${i}\\n\\nSome **bold** text, a list:\\n\\n- one\\n- two`;
                }
            });
        }"""
    )
    assert page.locator("#error-panel").is_visible() and page.locator("#queue-panel").is_visible()
    result = page.evaluate(
        """async () => {
            const app = window.weft, r = app.renderer;
            const measure = async (scale, frames) => {
                app.state.extra.ds = {scale, offset: [0, -400]};
                const intervals = [], draws = [], visible = [];
                let last = null;
                for (let i = 0; i < frames; i++) {
                    await new Promise(res => requestAnimationFrame(res));
                    const now = performance.now();
                    if (last !== null) intervals.push(now - last);
                    last = now;
                    const ds = app.state.extra.ds;
                    const dir = i < frames / 2 ? -1 : 1;
                    ds.offset = [ds.offset[0] + dir * 14 / scale, ds.offset[1] + dir * 6 / scale];
                    const t0 = performance.now();
                    r.draw();
                    draws.push(performance.now() - t0);
                    visible.push(r.visibleCount);
                }
                const med = a => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
                const p95 = a => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length * 0.95)]; };
                return {scale, frame_median_ms: med(intervals), draw_median_ms: med(draws), draw_p95_ms: p95(draws),
                        visible_median: med(visible), notes_shown: document.querySelectorAll(".markdown-note").length};
            };
            return [await measure(1, 150), await measure(0.6, 150), await measure(0.35, 150), await measure(0.12, 120)];
        }"""
    )
    page.screenshot(path=str(screenshots / "bench-500-nodes-panels-open.png"))
    machine = f"{cpu_model()}, Chromium {page.context.browser.version} headless, --disable-gpu; panels: error, {dock[1:-7]}, queue"
    print(machine)
    for r in result:
        print(
            f"panels open, 500 nodes at zoom {r['scale']}: median frame {r['frame_median_ms']:.2f} ms, "
            f"median draw {r['draw_median_ms']:.2f} ms (p95 {r['draw_p95_ms']:.2f}), ~{r['visible_median']} nodes visible"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "frame-time-panels-open.json").write_text(
        json.dumps({"machine": machine, "results": result}, indent=2)
    )
    assert all(r["frame_median_ms"] > 0 and r["visible_median"] > 0 for r in result)
    assert page.locator("#error-panel").is_visible()
