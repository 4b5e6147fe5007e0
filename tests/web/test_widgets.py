"""Widgets as a user works them: combos, toggles, number arrows and arithmetic, control
after generate; groups carry their nodes; a workflow JSON dropped on the canvas opens."""

from __future__ import annotations

import json
from pathlib import Path

from tests.web.helpers import add_node, canvas_point, drag, new_tab, node, set_text_widget, state, title


def widget_rect(page, node_id, name):
    return page.evaluate(f"window.weft.widgetClientRect({node_id}, {json.dumps(name)})")


def test_combo_toggle_number_widgets(page, screenshots):
    new_tab(page)
    math = add_node(page, "MathInt", canvas_point(page, 0.1, 0.2), expect_type="MathInt")
    flag = add_node(page, "primitive boolean", canvas_point(page, 0.5, 0.2), expect_type="PrimitiveBoolean")
    seed = add_node(page, "primitive int", canvas_point(page, 0.5, 0.5), expect_type="PrimitiveInt")

    # combo: click opens a filterable list; pick an entry
    r = widget_rect(page, math, "operation")
    page.mouse.click(r["left"] + r["width"] / 2, r["top"] + r["height"] / 2)
    page.wait_for_selector(".combo-menu")
    page.screenshot(path=str(screenshots / "combo-open.png"))
    page.click(".combo-menu .menu-item:has-text('multiply')")
    assert node(page, math)["widgets_values"]["operation"] == "multiply"
    # the arrows step through the choices
    choices = page.evaluate("window.weft.defs.MathInt.inputs.find(i => i.name === 'operation').choices")
    page.mouse.click(r["left"] + r["width"] - 8, r["top"] + r["height"] / 2)
    assert node(page, math)["widgets_values"]["operation"] == choices[choices.index("multiply") + 1]

    # numbers: arrows step, typing accepts arithmetic, values are clamped to the range
    r = widget_rect(page, math, "a")
    page.mouse.click(r["left"] + 8, r["top"] + r["height"] / 2)
    assert node(page, math)["widgets_values"]["a"] == -1
    set_text_widget(page, math, "b", "6*7")
    assert node(page, math)["widgets_values"]["b"] == 42

    # toggle
    r = widget_rect(page, flag, "value")
    page.mouse.click(r["left"] + r["width"] - 20, r["top"] + r["height"] / 2)
    assert node(page, flag)["widgets_values"]["value"] is True

    # control after generate: pick "increment"; each queueing adds one
    assert node(page, seed)["properties"]["control"] == {"value": "randomize"}
    r = widget_rect(page, seed, "value:control")
    page.mouse.click(r["left"] + r["width"] / 2, r["top"] + r["height"] / 2)
    page.click(".combo-menu .menu-item:has-text('increment')")
    assert node(page, seed)["properties"]["control"] == {"value": "increment"}
    set_text_widget(page, seed, "value", "10")
    page.keyboard.press("Control+z")
    assert node(page, seed)["widgets_values"]["value"] == 0
    page.keyboard.press("Control+y")
    assert node(page, seed)["widgets_values"]["value"] == 10


def test_group_moves_its_nodes(page):
    new_tab(page)
    a = add_node(page, "MathInt", canvas_point(page, 0.15, 0.3), expect_type="MathInt")
    b = add_node(page, "MathInt", canvas_point(page, 0.45, 0.3), expect_type="MathInt")
    outside = add_node(page, "MathInt", canvas_point(page, 0.75, 0.5), expect_type="MathInt")
    page.mouse.click(*title(page, a))
    page.keyboard.down("Shift")
    page.mouse.click(*title(page, b))
    page.keyboard.up("Shift")
    page.keyboard.press("Control+g")
    (group,) = state(page)["groups"]
    before = {n["id"]: n["pos"] for n in state(page)["nodes"]}
    gx, gy = page.evaluate(f"window.weft.renderer.toScreen({group['bounding'][0] + 80}, {group['bounding'][1] + 16})")
    box = page.locator("#canvas").bounding_box()
    drag(page, (box["x"] + gx, box["y"] + gy), (box["x"] + gx + 50, box["y"] + gy + 40))
    after = {n["id"]: n["pos"] for n in state(page)["nodes"]}
    scale = state(page)["extra"]["ds"]["scale"]
    dx, dy = round(50 / scale), round(40 / scale)
    assert after[a] == [before[a][0] + dx, before[a][1] + dy]
    assert after[b] == [before[b][0] + dx, before[b][1] + dy]
    assert after[outside] == before[outside]
    assert state(page)["groups"][0]["bounding"][:2] == [group["bounding"][0] + dx, group["bounding"][1] + dy]


def test_drop_workflow_json_opens_it(page, screenshots):
    doc = {
        "format": "weft-workflow",
        "version": 1,
        "last_node_id": 2,
        "last_link_id": 1,
        "nodes": [
            {
                "id": 1,
                "type": "PrimitiveString",
                "pos": [100, 100],
                "size": [240, 0],
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "STRING", "type": "STRING"}],
                "widgets_values": {"value": "dropped"},
                "properties": {},
            },
            {
                "id": 2,
                "type": "PreviewAny",
                "pos": [420, 100],
                "size": [240, 0],
                "mode": 0,
                "inputs": [{"name": "source", "type": "*"}],
                "outputs": [{"name": "STRING", "type": "STRING"}],
                "widgets_values": {},
                "properties": {},
            },
        ],
        "links": [{"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "STRING"}],
        "groups": [],
        "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
    }
    x, y = canvas_point(page, 0.5, 0.5)
    page.evaluate(
        """([text, x, y]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], "dropped.json", {type: "application/json"}));
            document.getElementById("canvas").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true, clientX: x, clientY: y}));
        }""",
        [json.dumps(doc), x, y],
    )
    page.wait_for_function(
        "() => document.querySelector('#tabs .tab.active .tab-name').textContent.includes('dropped')"
    )
    g = state(page)
    assert [n["widgets_values"] for n in g["nodes"]] == [{"value": "dropped"}, {}]
    assert len(g["links"]) == 1
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "() => window.weft.runtime.outputs[2] && window.weft.runtime.outputs[2].text[0] === 'dropped'"
    )


def test_everything_is_requested_under_the_base_path(browser, tmp_path_factory):
    """Behind a reverse proxy at /weft/ (--base-path, and the proxy's X-Forwarded-Prefix, which is
    honoured only with a base path configured), every URL the page uses starts there."""
    from tests.support.server import start_server
    from tests.web.conftest import web_registry

    # the proxy is trusted for its headers and authenticates users itself
    web_server = start_server(
        tmp_path_factory.mktemp("weft-proxied"),
        web_registry(),
        base_path="/elsewhere",
        trusted_proxies=["127.0.0.1"],
        insecure_no_auth=True,
    )
    context = browser.new_context(
        viewport={"width": 1200, "height": 800}, extra_http_headers={"X-Forwarded-Prefix": "/weft"}
    )
    try:
        page = context.new_page()
        seen = []
        # play the proxy: strip the prefix before the request reaches the server
        page.route(
            "**/*",
            lambda route: (
                seen.append(route.request.url),
                route.continue_(url=route.request.url.replace(f"{web_server.url}/weft/", f"{web_server.url}/")),
            ),
        )
        ws_urls = []
        page.on("websocket", lambda ws: ws_urls.append(ws.url))
        page.goto(web_server.url + "/weft/")
        page.wait_for_function("() => document.body.dataset.ready === 'true'")
        assert page.evaluate("Object.keys(window.weft.defs).length") > 10
        with page.expect_response(lambda r: "/api/prompt" in r.url):
            page.keyboard.press("Control+Enter")
        paths = [u[len(web_server.url) :] for u in seen]
        assert any(p.startswith("/weft/api/prompt") for p in paths)
        assert all(p.startswith("/weft/") for p in paths), paths
        assert ws_urls and all("/weft/ws?clientId=" in u for u in ws_urls)
    finally:
        context.close()
        web_server.stop()


def test_plugin_web_extension_widget_menu_and_events(browser, tmp_path_factory):
    """A pack's web extension (custom_nodes/example_pack) runs in the editor: its colour-picker
    widget edits the node's value (undoable), its menu entry runs, it hears server events."""
    from tests.support.server import start_server

    repo = Path(__file__).resolve().parents[2]
    live = start_server(
        tmp_path_factory.mktemp("weft-plugins"), load_plugins=True, extra_custom_node_dirs=[repo / "custom_nodes"]
    )
    context = browser.new_context(viewport={"width": 1300, "height": 800})
    try:
        page = context.new_page()
        page.goto(live.url + "/")
        page.wait_for_function("() => document.body.dataset.ready === 'true'")
        assert page.evaluate("window.weft.exampleReady") is True
        assert page.evaluate("window.weft.extensions.host.errors") == []
        new_tab(page)
        swatch = add_node(page, "color swatch", canvas_point(page, 0.2, 0.2), expect_type="ExampleColorSwatch")
        picker = page.locator(f"input.example-color[data-node='{swatch}']")
        picker.wait_for()
        assert picker.input_value() == "#ff8800"
        picker.evaluate("el => { el.value = '#123456'; el.dispatchEvent(new Event('change', {bubbles: true})); }")
        assert node(page, swatch)["widgets_values"]["color"] == "#123456"
        page.keyboard.press("Control+z")
        assert node(page, swatch)["widgets_values"]["color"] == "#ff8800"
        page.wait_for_function(
            f"() => document.querySelector(\"input.example-color[data-node='{swatch}']\").value === '#ff8800'"
        )
        page.click("#menu-button")
        page.click(".menu-item:has-text('Example pack: count colour swatches')")
        page.wait_for_selector(".toast:has-text('1 colour swatch')")
        assert page.evaluate("window.weft.apiPrompt()")[str(swatch)]["inputs"]["color"] == "#ff8800"
    finally:
        context.close()
        live.stop()
