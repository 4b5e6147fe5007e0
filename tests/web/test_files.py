"""The user's work is safe: it survives a reload, saves to and opens from a file, several
workflows stay open in tabs, and ComfyUI workflow files open as they are."""

from __future__ import annotations

import json

from tests.web.helpers import add_node, canvas_point, links, new_tab, node, set_text_widget, state, wait_output


def content(graph):
    return {k: graph[k] for k in ("nodes", "links", "groups", "last_node_id", "last_link_id")}


def open_menu_item(page, label):
    page.click("#menu-button")
    page.click(f".menu-item:has-text('{label}')")


def test_reload_keeps_tabs_and_file_save_open_roundtrip(page, tmp_path, screenshots):
    new_tab(page)
    a = add_node(page, "primitive int", canvas_point(page, 0.1, 0.3), expect_type="PrimitiveInt")
    b = add_node(page, "MathInt", canvas_point(page, 0.4, 0.3), expect_type="MathInt")
    set_text_widget(page, a, "value", "41")
    page.mouse.click(*canvas_point(page, 0.8, 0.8))
    before = state(page)
    tabs = page.locator("#tabs .tab").count()
    assert tabs >= 2

    page.reload()
    page.wait_for_function("() => document.body.dataset.ready === 'true'")
    assert page.locator("#tabs .tab").count() == tabs
    after = state(page)
    assert content(after) == content(before)
    assert after["extra"]["ds"] == before["extra"]["ds"]
    assert node(page, a)["widgets_values"]["value"] == 41
    assert node(page, a)["properties"]["cnr_id"] == "weft"  # provenance, as ComfyUI writes it

    # the first tab still holds the default workflow
    page.click("#tabs .tab >> nth=0")
    assert len(state(page)["nodes"]) > 0
    page.click(f"#tabs .tab >> nth={tabs - 1}")
    assert content(state(page)) == content(before)

    # download as a file (Ctrl+S saves to the server's workflow library: test_workflow_library.py) ...
    with page.expect_download() as dl:
        open_menu_item(page, "Download (Weft format)")
    saved = tmp_path / "saved.json"
    dl.value.save_as(saved)
    doc = json.loads(saved.read_text())
    assert doc["format"] == "weft-workflow" and doc["version"] == 1
    assert content(doc) == content(before)
    # ... and export the API-format prompt
    with page.expect_download() as dl:
        open_menu_item(page, "Export (API format)")
    api = json.loads(open(dl.value.path()).read())
    assert api[str(b)]["class_type"] == "MathInt" and api[str(a)]["inputs"] == {"value": 41}

    # open the file: it comes back in a new tab
    with page.expect_file_chooser() as chooser:
        open_menu_item(page, "Open")
    chooser.value.set_files(str(saved))
    page.wait_for_function(f"() => document.querySelectorAll('#tabs .tab').length === {tabs + 1}")
    assert content(state(page)) == content(before)
    assert page.locator("#tabs .tab.active .tab-name").inner_text() == "saved"
    page.screenshot(path=str(screenshots / "tabs-after-open.png"))


COMFY_WORKFLOW = {
    "last_node_id": 7,
    "last_link_id": 3,
    "nodes": [
        {
            "id": 1,
            "type": "PrimitiveInt",
            "pos": [50, 100],
            "size": [270, 82],
            "flags": {},
            "order": 0,
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "INT", "type": "INT", "links": [1], "slot_index": 0}],
            "properties": {"Node name for S&R": "PrimitiveInt"},
            "widgets_values": [5, "fixed"],
        },
        {
            "id": 2,
            "type": "MathInt",
            "pos": [400, 100],
            "size": [270, 106],
            "flags": {},
            "order": 1,
            "mode": 0,
            "inputs": [{"name": "a", "type": "INT", "link": 1, "widget": {"name": "a"}}],
            "outputs": [{"name": "INT", "type": "INT", "links": [2], "slot_index": 0}],
            "properties": {},
            "widgets_values": [0, 3, "multiply"],
        },
        {
            "id": 3,
            "type": "Reroute",
            "pos": [720, 130],
            "size": [75, 26],
            "flags": {},
            "order": 2,
            "mode": 0,
            "inputs": [{"name": "", "type": "*", "link": 2}],
            "outputs": [{"name": "", "type": "INT", "links": [3], "slot_index": 0}],
            "properties": {"showOutputText": False, "horizontal": False},
        },
        {
            "id": 4,
            "type": "PreviewAny",
            "pos": [850, 100],
            "size": [240, 120],
            "flags": {},
            "order": 3,
            "mode": 0,
            "inputs": [{"name": "source", "type": "*", "link": 3}],
            "outputs": [{"name": "STRING", "type": "STRING", "links": None}],
            "properties": {},
            "widgets_values": [],
        },
        {
            "id": 5,
            "type": "MathInt",
            "pos": [400, 300],
            "size": [270, 106],
            "flags": {},
            "order": 4,
            "mode": 4,
            "inputs": [],
            "outputs": [{"name": "INT", "type": "INT", "links": None}],
            "properties": {},
            "widgets_values": [1, 2, "add"],
        },
        {
            "id": 6,
            "type": "SomeCustomNodeNobodyHas",
            "pos": [50, 300],
            "size": [270, 60],
            "flags": {},
            "order": 5,
            "mode": 2,
            "inputs": [{"name": "clip", "type": "CLIP", "link": None}],
            "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": None}],
            "properties": {},
            "widgets_values": ["a prompt", 7],
        },
        {
            "id": 7,
            "type": "Note",
            "pos": [50, 450],
            "size": [300, 100],
            "flags": {},
            "order": 6,
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "properties": {"text": ""},
            "widgets_values": ["remember: 5 * 3"],
        },
    ],
    "links": [[1, 1, 0, 2, 0, "INT"], [2, 2, 0, 3, 0, "INT"], [3, 3, 0, 4, 0, "*"]],
    "groups": [{"title": "Math", "bounding": [20, 20, 1100, 420], "color": "#3f789e", "font_size": 24, "flags": {}}],
    "config": {},
    "extra": {"ds": {"scale": 0.8, "offset": [10, 20]}},
    "version": 0.4,
}


def test_import_comfyui_workflow_and_run_it(page, tmp_path, screenshots):
    path = tmp_path / "comfy_math.json"
    path.write_text(json.dumps(COMFY_WORKFLOW))
    with page.expect_file_chooser() as chooser:
        open_menu_item(page, "Open")
    chooser.value.set_files(str(path))
    page.wait_for_function("() => window.weft.state.nodes.length === 7")
    warning = page.locator("#missing-dialog .missing-types:has-text('SomeCustomNodeNobodyHas')")
    warning.wait_for()  # the "missing models and nodes" dialog names the unknown type
    assert "Reroute" not in warning.inner_text() and "Note" not in warning.inner_text()
    g = state(page)
    nodes = {n["id"]: n for n in g["nodes"]}
    assert nodes[1]["widgets_values"] == {"value": 5} and nodes[1]["properties"]["control"] == {"value": "fixed"}
    assert nodes[2]["widgets_values"] == {"a": 0, "b": 3, "operation": "multiply"}
    assert nodes[2]["inputs"] == [{"name": "a", "type": "INT", "widget": "a"}]
    assert nodes[5]["mode"] == 4 and nodes[6]["mode"] == 2 and nodes[6].get("missing")
    assert nodes[7]["widgets_values"] == {"text": "remember: 5 * 3"}
    assert not nodes[3].get("missing") and not nodes[7].get("missing")
    assert links(page) == [(1, 0, 2, 0), (2, 0, 3, 0), (3, 0, 4, 0)]
    assert g["groups"][0]["title"] == "Math" and g["groups"][0]["bounding"] == [20, 20, 1100, 420]
    assert g["extra"]["ds"] == {"scale": 0.8, "offset": [10, 20]}
    # the reroute disappears in the API prompt; bypassed, muted and editor-only nodes are left out
    assert page.evaluate("window.weft.apiPrompt()") == {
        "1": {"inputs": {"value": 5}, "class_type": "PrimitiveInt", "_meta": {"title": "Int"}},
        "2": {
            "inputs": {"a": ["1", 0], "b": 3, "operation": "multiply"},
            "class_type": "MathInt",
            "_meta": {"title": "Int Math"},
        },
        "4": {"inputs": {"source": ["2", 0]}, "class_type": "PreviewAny", "_meta": {"title": "Preview as Text"}},
    }
    page.screenshot(path=str(screenshots / "comfyui-import.png"))
    # exported back to ComfyUI's format it reads in unchanged (widgets_values order, links, groups)
    comfy = page.evaluate("window.weft.comfyWorkflow()")
    by_id = {n["id"]: n for n in comfy["nodes"]}
    assert by_id[1]["widgets_values"] == [5, "fixed"] and by_id[2]["widgets_values"] == [0, 3, "multiply"]
    assert by_id[2]["inputs"] == [{"name": "a", "type": "INT", "link": 1, "widget": {"name": "a"}}]
    assert sorted(comfy["links"]) == sorted(COMFY_WORKFLOW["links"])
    again = page.evaluate(
        """async (wf) => {
            const {fromAnyDocument} = await import("./js/serialize.js");
            return JSON.parse(JSON.stringify(fromAnyDocument(wf, window.weft.defs)));
        }""",
        comfy,
    )
    assert content(again)["links"] == content(g)["links"]
    assert [(n["id"], n["type"], n["widgets_values"], n["mode"]) for n in again["nodes"]] == [
        (n["id"], n["type"], n["widgets_values"], n["mode"]) for n in g["nodes"]
    ]
    page.click("#queue-button")
    assert wait_output(page, 4, "text") == ["15"]


def test_tabs_are_independent(page):
    new_tab(page)
    add_node(page, "MathInt", canvas_point(page, 0.3, 0.3), expect_type="MathInt")
    new_tab(page)
    assert state(page)["nodes"] == []
    add_node(page, "PrimitiveFloat", canvas_point(page, 0.3, 0.3), expect_type="PrimitiveFloat")
    page.keyboard.press("Control+z")
    assert state(page)["nodes"] == []
    page.click("#tabs .tab >> nth=-2")
    assert [n["type"] for n in state(page)["nodes"]] == ["MathInt"]
    # closing a tab with unsaved edits asks first
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#tabs .tab.active .tab-close")
    assert asked and [n["type"] for n in state(page)["nodes"]] == ["MathInt"]
    page.once("dialog", lambda d: d.accept())
    page.click("#tabs .tab.active .tab-close")
    assert all(n["type"] != "MathInt" for n in state(page)["nodes"])
