"""The workflow library: Save asks for a name and a format and writes workflows/<name>.json on
the server (where ComfyUI keeps its workflows); the panel lists them to open, rename and
delete (with confirmation); templates (the default workflow and every example that ships
with Weft) open from it. Each test has a server of its own: the files are the server's."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

from tests.support.server import LiveServer
from tests.web import own_server
from tests.web.helpers import add_node, canvas_point, new_tab, set_text_widget, state

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: a server (and user folder) of its own per test
web_server = own_server.web_server
context = own_server.context


def userdata(server: LiveServer, path: str):
    return server.get("/userdata/" + urllib.parse.quote(path, safe=""))


def save_dialog(page, name: str, api: bool = False) -> None:
    dialog = page.locator("#save-dialog")
    dialog.wait_for()
    field = dialog.locator("input[type=text]")
    field.fill("")
    field.type(name)
    if api:
        dialog.locator("input[value=api]").click()
    field.press("Enter")


def row(page, path: str):
    return page.locator(f"#workflow-library .wf-row[data-path='{path}']")


def test_save_open_rename_delete(page, web_server, screenshots):
    new_tab(page)
    a = add_node(page, "primitive int", canvas_point(page, 0.15, 0.3), expect_type="PrimitiveInt")
    b = add_node(page, "MathInt", canvas_point(page, 0.45, 0.3), expect_type="MathInt")
    set_text_widget(page, a, "value", "41")
    page.mouse.click(*canvas_point(page, 0.8, 0.85))

    # Ctrl+S asks for a name; the file is ComfyUI's UI format, in workflows/
    page.keyboard.press("Control+s")
    page.locator("#save-dialog").wait_for()
    page.screenshot(path=str(screenshots / "save-dialog.png"))
    save_dialog(page, "my flow")
    page.wait_for_selector(".toast:has-text('Saved workflows/my flow.json')")
    status, saved = userdata(web_server, "workflows/my flow.json")
    assert status == 200 and saved["version"] == 0.4
    assert {n["type"]: n["widgets_values"][0] for n in saved["nodes"]} == {"PrimitiveInt": 41, "MathInt": 0}
    assert page.locator("#tabs .tab.active .tab-name").inner_text() == "my flow"

    # the next Ctrl+S saves in place, without asking
    set_text_widget(page, a, "value", "42")
    page.mouse.click(*canvas_point(page, 0.8, 0.85))
    assert page.locator("#tabs .tab.active .tab-name").inner_text().startswith("•")
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('#tabs .tab.active .tab-name').textContent.startsWith('•')")
    assert page.locator("#save-dialog").count() == 0
    assert (
        next(n for n in userdata(web_server, "workflows/my flow.json")[1]["nodes"] if n["id"] == a)["widgets_values"][0]
        == 42
    )

    # Save as… in API format: the prompt scripts post
    page.click("#menu-button")
    page.click(".menu-item:has-text('Save as…')")
    save_dialog(page, "api copy", api=True)
    page.wait_for_selector(".toast:has-text('(API format)')")
    status, api = userdata(web_server, "workflows/api copy.json")
    assert status == 200 and api[str(a)]["class_type"] == "PrimitiveInt" and api[str(a)]["inputs"] == {"value": 42}
    assert api[str(b)]["class_type"] == "MathInt"

    # the library lists both (W opens it); the open one is marked
    page.keyboard.press("w")
    row(page, "workflows/api copy.json").wait_for()
    assert "is-open" in row(page, "workflows/my flow.json").get_attribute("class")
    page.screenshot(path=str(screenshots / "workflow-library.png"))

    rename_and_delete(page, web_server)
    reopen(page, web_server, a)


def rename_and_delete(page, web_server) -> None:
    # rename into a folder; a name that is taken is refused in the dialog
    row(page, "workflows/api copy.json").locator(".wf-rename").click()
    field = page.locator("#rename-dialog input")
    field.fill("scripts/api copy 2")
    field.press("Enter")
    row(page, "workflows/scripts/api copy 2.json").wait_for()
    assert row(page, "workflows/api copy.json").count() == 0
    assert userdata(web_server, "workflows/scripts/api copy 2.json")[0] == 200
    assert userdata(web_server, "workflows/api copy.json")[0] == 404
    row(page, "workflows/my flow.json").locator(".wf-rename").click()
    page.locator("#rename-dialog input").fill("scripts/api copy 2")
    page.keyboard.press("Enter")
    page.wait_for_selector("#rename-dialog .weft-dialog-error:has-text('already exists')")
    page.keyboard.press("Escape")
    page.locator("#rename-dialog").wait_for(state="detached")
    assert userdata(web_server, "workflows/my flow.json")[0] == 200

    # delete asks first: Cancel keeps the file, Delete removes it
    row(page, "workflows/scripts/api copy 2.json").locator(".wf-delete").click()
    page.locator("#delete-dialog button:has-text('Cancel')").click()
    assert userdata(web_server, "workflows/scripts/api copy 2.json")[0] == 200
    row(page, "workflows/scripts/api copy 2.json").locator(".wf-delete").click()
    page.locator("#delete-dialog button:has-text('Delete')").click()
    row(page, "workflows/scripts/api copy 2.json").wait_for(state="detached")
    assert userdata(web_server, "workflows/scripts/api copy 2.json")[0] == 404


def reopen(page, web_server, a: int) -> None:
    # close the tab, open the file from the library: the same graph comes back
    before = state(page)
    page.locator("#tabs .tab.active .tab-close").click()
    row(page, "workflows/my flow.json").locator(".wf-open").click()
    page.wait_for_function("() => document.querySelector('#tabs .tab.active .tab-name').textContent === 'my flow'")
    after = state(page)
    assert [(n["type"], n["widgets_values"]) for n in after["nodes"]] == [
        (n["type"], n["widgets_values"]) for n in before["nodes"]
    ]
    # the tab stays bound to its file across a reload: Ctrl+S still saves in place
    page.reload()
    page.wait_for_function("() => document.body.dataset.ready === 'true'")
    set_text_widget(page, a, "value", "7")
    page.mouse.click(*canvas_point(page, 0.8, 0.85))
    page.keyboard.press("Control+s")
    page.wait_for_selector(".toast:has-text('Saved workflows/my flow.json')")
    assert page.locator("#save-dialog").count() == 0
    assert (
        next(n for n in userdata(web_server, "workflows/my flow.json")[1]["nodes"] if n["id"] == a)["widgets_values"][0]
        == 7
    )


def test_save_over_an_existing_file_asks_and_comfyui_files_open(page, web_server):
    # a workflow ComfyUI saved (written straight into the user folder over HTTP, as its front end does)
    comfy = json.loads((EXAMPLES / "apg_shapes.json").read_text())
    status, _ = web_server.request("POST", "/userdata/workflows%2Ffrom%20comfy.json", raw=json.dumps(comfy).encode())
    assert status == 200
    page.click("#workflows-toggle")
    row(page, "workflows/from comfy.json").locator(".wf-open").click()
    page.wait_for_function(f"() => window.weft.state.nodes.length === {len(comfy['nodes'])}")
    assert page.locator("#tabs .tab.active .tab-name").inner_text() == "from comfy"
    page.click("#workflows-toggle")  # closes the panel

    # saving another workflow under that name asks before replacing it
    new_tab(page)
    add_node(page, "primitive int", canvas_point(page, 0.2, 0.3), expect_type="PrimitiveInt")
    page.keyboard.press("Control+s")
    save_dialog(page, "from comfy")
    page.locator("#overwrite-dialog button:has-text('Cancel')").click()
    assert len(userdata(web_server, "workflows/from comfy.json")[1]["nodes"]) == len(comfy["nodes"])
    page.keyboard.press("Control+s")
    save_dialog(page, "from comfy")
    page.locator("#overwrite-dialog button:has-text('Replace')").click()
    page.wait_for_selector(".toast:has-text('Saved workflows/from comfy.json')")
    assert [n["type"] for n in userdata(web_server, "workflows/from comfy.json")[1]["nodes"]] == ["PrimitiveInt"]

    # a bad name is refused in the dialog
    page.click("#menu-button")
    page.click(".menu-item:has-text('Save as…')")
    save_dialog(page, "../escape")
    page.wait_for_selector("#save-dialog .weft-dialog-error:has-text('no empty parts')")
    page.keyboard.press("Escape")
    page.locator("#save-dialog").wait_for(state="detached")


def test_templates_open_from_the_library(page, web_server, screenshots):
    page.keyboard.press("w")
    status, listing = web_server.get("/workflow_templates")
    assert status == 200
    names = listing["weft"]
    assert names and all(not n.endswith(".api") for n in names)
    page.wait_for_function(
        f"() => document.querySelectorAll('#workflow-library .wf-template').length === {len(names) + 1}"
    )
    page.screenshot(path=str(screenshots / "workflow-templates.png"))
    for name in names:
        expected = len(json.loads((EXAMPLES / f"{name}.json").read_text())["nodes"])
        tabs = page.locator("#tabs .tab").count()
        page.locator(f"#workflow-library .wf-template[data-template='weft/{name}'] .wf-open").click()
        page.wait_for_function(f"() => document.querySelectorAll('#tabs .tab').length === {tabs + 1}")
        assert len(state(page)["nodes"]) == expected, name
        closers = page.locator("#missing-dialog .close")
        if closers.count():
            closers.click()
    # the default workflow is a template too; a template is a new workflow: Save asks for a name
    page.locator("#workflow-library .wf-template[data-template='default'] .wf-open").click()
    page.wait_for_function("() => window.weft.state.nodes.some(n => n.type === 'KSampler')")
    page.keyboard.press("Control+s")
    page.locator("#save-dialog").wait_for()
    page.keyboard.press("Escape")
    page.locator("#save-dialog").wait_for(state="detached")
