"""The settings dialog: theme, link style, the zoom below which nodes are simplified, grid
snap, the live preview method and the shortcut editor, each changed by mouse and keyboard,
stored on the server (GET /settings) and in force after a reload or in a fresh browser.
ComfyUI's default shortcuts (Alt+C collapses, Ctrl+Alt+Enter interrupts) and Escape closing
every overlay. Each test has a server of its own: the settings are the server's."""

from __future__ import annotations

import time

from tests.web import own_server
from tests.web.conftest import _open_canvas
from tests.web.helpers import add_node, canvas_point, drag, new_tab, node, set_text_widget, socket, title

#: a server (and user folder) of its own per test
web_server = own_server.web_server
context = own_server.context


def open_settings(page):
    page.keyboard.press("Control+,")
    dialog = page.locator("#settings-dialog")
    dialog.wait_for()
    return dialog


def setting(dialog, setting_id: str):
    return dialog.locator(f".setting-row[data-setting='{setting_id}']")


def close_settings(page) -> None:
    page.keyboard.press("Escape")
    page.locator("#settings-dialog").wait_for(state="detached")


def next_frame(page) -> None:
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def pixel(page, x: float, y: float) -> tuple[int, int, int]:
    """The canvas's colour at a page point (read back from what was drawn)."""
    next_frame(page)
    return tuple(
        page.evaluate(
            """([x, y]) => { const c = document.getElementById('canvas'), r = c.getBoundingClientRect(), d = devicePixelRatio || 1;
                return Array.from(c.getContext('2d').getImageData(Math.round((x - r.left) * d), Math.round((y - r.top) * d), 1, 1).data).slice(0, 3); }""",
            [x, y],
        )
    )


def near(color, expected, tol=6) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(color, expected, strict=True))


def test_appearance_settings_are_stored_on_the_server(page, web_server, browser, screenshots):
    new_tab(page)
    empty = canvas_point(page, 0.9, 0.15)
    assert near(pixel(page, *empty), (0x1C, 0x1D, 0x21))  # the dark canvas
    dialog = open_settings(page)
    setting(dialog, "Comfy.ColorPalette").locator("select").select_option(label="Light")
    setting(dialog, "Comfy.LinkRenderMode").locator("select").select_option(label="Straight")
    lod = setting(dialog, "LiteGraph.Canvas.LowQualityRenderingZoomThreshold").locator("input")
    lod.fill("5")
    lod.press("Enter")
    error = setting(dialog, "LiteGraph.Canvas.LowQualityRenderingZoomThreshold").locator(".setting-error")
    error.wait_for()
    assert "from 0.1 to 1" in error.inner_text()
    lod.fill("0.9")
    lod.press("Tab")
    page.wait_for_function("() => document.documentElement.dataset.theme === 'light'")
    page.screenshot(path=str(screenshots / "settings-dialog.png"))
    close_settings(page)
    assert near(pixel(page, *empty), (0xE9, 0xEB, 0xEF))  # the light canvas
    wait_settings(
        web_server,
        {
            "Comfy.ColorPalette": "light",
            "Comfy.LinkRenderMode": 0,
            "LiteGraph.Canvas.LowQualityRenderingZoomThreshold": 0.9,
        },
    )

    # the same in a browser that never saw them: they come from the server
    fresh = browser.new_context(viewport={"width": 1400, "height": 860})
    try:
        other = _open_canvas(fresh, web_server.url, [])
        assert other.evaluate("document.documentElement.dataset.theme") == "light"
        assert near(pixel(other, *canvas_point(other, 0.9, 0.15)), (0xE9, 0xEB, 0xEF))
        dialog = open_settings(other)
        assert setting(dialog, "Comfy.LinkRenderMode").locator("select option:checked").inner_text() == "Straight"
        assert (
            setting(dialog, "LiteGraph.Canvas.LowQualityRenderingZoomThreshold").locator("input").input_value() == "0.9"
        )
    finally:
        fresh.close()


def wait_settings(server, expected: dict) -> dict:
    deadline = time.monotonic() + 10
    while True:
        status, settings = server.get("/settings")
        if status == 200 and all(settings.get(k) == v for k, v in expected.items()):
            return settings
        assert time.monotonic() < deadline, settings
        time.sleep(0.05)


def test_link_style_and_low_detail_zoom_take_effect_after_a_reload(page, web_server, screenshots):
    web_server.post("/settings", {"Comfy.LinkRenderMode": 0, "LiteGraph.Canvas.LowQualityRenderingZoomThreshold": 0.9})
    page.reload()
    page.wait_for_function("() => document.body.dataset.ready === 'true'")
    new_tab(page)
    src = add_node(page, "primitive int", canvas_point(page, 0.1, 0.15), expect_type="PrimitiveInt")
    dst = add_node(page, "preview as text", canvas_point(page, 0.55, 0.55), expect_type="PreviewAny")
    drag(page, socket(page, src, "output", 0), title(page, dst))
    (x1, y1), (x2, y2) = socket(page, src, "output", 0), socket(page, dst, "input", 0)
    # a straight link runs at right angles: through the vertical at the middle, not along a curve
    page.mouse.click(*canvas_point(page, 0.9, 0.9))
    page.mouse.click((x1 + x2) / 2, y1 + (y2 - y1) * 0.2, button="right")
    page.wait_for_selector(".menu-item:has-text('Add reroute')")
    page.keyboard.press("Escape")
    page.wait_for_selector(".menu", state="detached")

    # zoomed out to 0.82, below the 0.9 threshold: the widgets are not drawn
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 40)
    page.mouse.wheel(0, 120)  # one notch: x0.82
    page.wait_for_function("() => window.weft.state.extra.ds.scale < 0.9")
    r = page.evaluate(f"window.weft.widgetClientRect({src}, 'value')")
    at = (r["left"] + r["width"] * 0.5, r["top"] + r["height"] / 2)
    widget_bg = (0x22, 0x23, 0x27)
    assert not near(pixel(page, *at), widget_bg), pixel(page, *at)
    page.screenshot(path=str(screenshots / "low-detail-titles.png"))
    dialog = open_settings(page)
    lod = setting(dialog, "LiteGraph.Canvas.LowQualityRenderingZoomThreshold").locator("input")
    lod.fill("0.3")
    lod.press("Enter")
    close_settings(page)
    assert near(pixel(page, *at), widget_bg), pixel(page, *at)  # the widget is back
    assert wait_settings(web_server, {"LiteGraph.Canvas.LowQualityRenderingZoomThreshold": 0.3})


def test_grid_snap_and_preview_method(page, web_server):
    new_tab(page)
    a = add_node(page, "primitive string", canvas_point(page, 0.2, 0.3), expect_type="PrimitiveString")
    show = add_node(page, "preview as text", canvas_point(page, 0.55, 0.3), expect_type="PreviewAny")
    drag(page, socket(page, a, "output", 0), title(page, show))
    set_text_widget(page, a, "value", "hello")
    dialog = open_settings(page)
    setting(dialog, "pysssss.SnapToGrid").locator("input").check()
    size = setting(dialog, "Comfy.SnapToGrid.GridSize").locator("input")
    size.fill("25")
    size.press("Enter")
    setting(dialog, "Comfy.Execution.PreviewMethod").locator("select").select_option(label="None")
    close_settings(page)
    wait_settings(
        web_server,
        {"pysssss.SnapToGrid": True, "Comfy.SnapToGrid.GridSize": 25, "Comfy.Execution.PreviewMethod": "none"},
    )
    x, y = title(page, a)
    drag(page, (x, y), (x + 37, y + 61))
    pos = node(page, a)["pos"]
    assert pos[0] % 25 == 0 and pos[1] % 25 == 0, pos

    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"() => window.weft.runtime.outputs[{show}]")
    prompt_id = page.evaluate("window.weft.lastPromptId")
    entry = web_server.wait_history(prompt_id)
    assert entry["prompt"][3]["preview_method"] == "none"


def test_default_shortcuts_collapse_and_interrupt(page):
    new_tab(page)
    a = add_node(page, "primitive int", canvas_point(page, 0.15, 0.3), expect_type="PrimitiveInt")
    slow = add_node(page, "TestSlow", canvas_point(page, 0.15, 0.6), expect_type="TestSlow")
    show = add_node(page, "preview as text", canvas_point(page, 0.55, 0.6), expect_type="PreviewAny")
    drag(page, socket(page, slow, "output", 0), title(page, show))
    page.mouse.click(*title(page, a))
    page.keyboard.down("Shift")
    page.mouse.click(*title(page, slow))
    page.keyboard.up("Shift")
    page.keyboard.press("Alt+c")
    assert node(page, a).get("collapsed") and node(page, slow).get("collapsed")
    page.keyboard.press("Alt+c")
    assert not node(page, a).get("collapsed") and not node(page, slow).get("collapsed")

    set_text_widget(page, slow, "steps", "400")
    set_text_widget(page, slow, "step_seconds", "0.05")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"() => String(window.weft.runtime.executing) === '{slow}'")
    page.keyboard.press("Control+Alt+Enter")
    page.wait_for_selector(".toast:has-text('interrupted')")
    page.wait_for_function("() => window.weft.runtime.executing === null")


def test_keybinding_editor(page, web_server, screenshots):
    new_tab(page)
    a = add_node(page, "primitive int", canvas_point(page, 0.2, 0.3), expect_type="PrimitiveInt")
    dialog = open_settings(page)
    dialog.locator(".kb-filter").fill("bypass")
    bypass = dialog.locator("tr[data-command='Comfy.Canvas.ToggleSelectedNodes.Bypass']")
    assert bypass.locator(".kb-keys").inner_text() == "Ctrl+B"
    bypass.locator(".kb-change").click()
    page.keyboard.press("Alt+b")
    page.wait_for_function(
        "() => document.querySelector(\"tr[data-command='Comfy.Canvas.ToggleSelectedNodes.Bypass'] .kb-keys\").textContent === 'Alt+B'"
    )
    # a key another command has: asked first; cancelled, nothing moves
    dialog.locator(".kb-filter").fill("collapse")
    collapse = dialog.locator("tr[data-command='Comfy.Canvas.ToggleSelectedNodes.Collapse']")
    collapse.locator(".kb-change").click()
    page.keyboard.press("Alt+b")
    page.locator("#shortcut-conflict").wait_for()
    page.screenshot(path=str(screenshots / "shortcut-conflict.png"))
    page.keyboard.press("Escape")
    page.locator("#shortcut-conflict").wait_for(state="detached")
    assert page.locator("#settings-dialog").count() == 1  # only the question closed
    assert collapse.locator(".kb-keys").inner_text() == "Alt+C"
    close_settings(page)

    settings = wait_settings(web_server, {})
    assert settings["Comfy.Keybinding.NewBindings"] == [
        {"commandId": "Comfy.Canvas.ToggleSelectedNodes.Bypass", "combo": {"key": "b", "alt": True}}
    ]
    assert settings["Comfy.Keybinding.UnsetBindings"] == [
        {"commandId": "Comfy.Canvas.ToggleSelectedNodes.Bypass", "combo": {"key": "b", "ctrl": True}}
    ]

    # after a reload Alt+B bypasses and Ctrl+B no longer does
    page.reload()
    page.wait_for_function("() => document.body.dataset.ready === 'true'")
    page.mouse.click(*title(page, a))
    page.keyboard.press("Control+b")
    assert node(page, a)["mode"] == 0
    page.keyboard.press("Alt+b")
    assert node(page, a)["mode"] == 4
    page.keyboard.press("Alt+b")

    # Reset: Ctrl+B again
    dialog = open_settings(page)
    dialog.locator(".kb-filter").fill("bypass")
    dialog.locator("tr[data-command='Comfy.Canvas.ToggleSelectedNodes.Bypass'] .kb-reset").click()
    page.wait_for_function(
        "() => document.querySelector(\"tr[data-command='Comfy.Canvas.ToggleSelectedNodes.Bypass'] .kb-keys\").textContent === 'Ctrl+B'"
    )
    close_settings(page)
    page.keyboard.press("Control+b")
    assert node(page, a)["mode"] == 4
    assert wait_settings(web_server, {"Comfy.Keybinding.NewBindings": [], "Comfy.Keybinding.UnsetBindings": []})


def test_escape_closes_every_overlay(page):
    page.mouse.click(*canvas_point(page, 0.6, 0.8))
    page.keyboard.press("?")
    page.locator("#shortcuts").wait_for()
    assert "Collapse or expand the selected nodes" in page.locator("#shortcuts").inner_text()
    page.mouse.click(*canvas_point(page, 0.1, 0.95), button="right")
    page.locator(".menu").wait_for()
    page.keyboard.press("Escape")
    page.locator(".menu").wait_for(state="detached")
    assert page.locator("#shortcuts").count() == 0

    # a dialog over the sheet: Escape in the dialog closes both
    page.mouse.click(*canvas_point(page, 0.6, 0.8))
    page.keyboard.press("?")
    page.locator("#shortcuts").wait_for()
    open_settings(page)
    close_settings(page)
    assert page.locator("#shortcuts").count() == 0

    # the node search too
    page.mouse.dblclick(*canvas_point(page, 0.6, 0.8))
    page.wait_for_selector(".search-menu:not([hidden]) .search-input")
    page.keyboard.press("Escape")
    page.wait_for_selector(".search-menu", state="hidden")
