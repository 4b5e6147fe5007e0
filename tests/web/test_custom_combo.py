"""ComfyUI's Custom Combo on the canvas, driven with the mouse and keyboard against the real
server: options typed into text widgets that grow as they are filled, the ``choice`` combo
listing them, the choice following an edited option and falling back when its option is
cleared, each step one undoable edit; the prompt queued and run, the chosen STRING read from
a Preview as Text node; a workflow as ComfyUI's frontend (1.35.9, the one ComfyUI 0.8.0 ships)
saves it read and written back the same, and sent with the option widgets as that frontend
sends them."""

from __future__ import annotations

import json
from typing import Any

from tests.web.helpers import (
    add_node,
    canvas_point,
    drag,
    new_tab,
    node,
    set_text_widget,
    socket,
    wait_output,
    widget_center,
    wire,
)
from tests.web.test_draw_caches import SAME_AS_FRESH


def widgets(page, node_id: int) -> list[str]:
    """The widgets the node shows, as laid out for drawing."""
    return page.evaluate(
        f"""() => {{ const app = window.weft, n = app.state.nodes.find(m => m.id === {node_id});
            return app.renderer.layout(n).widgets.map(w => w.name); }}"""
    )


def values(page, node_id: int) -> dict[str, Any]:
    return node(page, node_id)["widgets_values"]


def menu(page, node_id: int) -> list[str]:
    """Open the choice combo's menu with a click; the options it lists (the menu is closed again)."""
    page.mouse.click(*widget_center(page, node_id, "choice"))
    page.wait_for_selector(".combo-menu")
    items = page.locator(".combo-menu .menu-item span").all_inner_texts()
    page.keyboard.press("Escape")
    page.wait_for_selector(".combo-menu", state="detached")
    return items


def choose(page, node_id: int, value: str) -> None:
    page.mouse.click(*widget_center(page, node_id, "choice"))
    page.wait_for_selector(".combo-menu")
    page.click(f".combo-menu .menu-item span:text-is('{value}')")
    page.wait_for_function(
        f"() => window.weft.state.nodes.find(n => n.id === {node_id}).widgets_values.choice === {json.dumps(value)}"
    )


def shown_text(page, preview: int) -> list[str]:
    """Queue the graph; the text the Preview as Text node shows."""
    page.evaluate(f"() => {{ delete window.weft.runtime.outputs[{preview}]; }}")
    page.click("#queue-button")
    return wait_output(page, preview, "text")


def options(n: int) -> list[str]:
    return ["choice"] + [f"option{i}" for i in range(n)]


def test_typed_options_fill_the_combo_and_the_choice_runs(page):
    new_tab(page)
    combo = add_node(page, "Custom Combo", canvas_point(page, 0.3, 0.3), expect_type="CustomCombo")
    assert widgets(page, combo) == options(1) and values(page, combo) == {"choice": "", "option0": ""}
    assert menu(page, combo) == []
    # filling the last option brings an empty one after it; the first typed becomes the choice
    set_text_widget(page, combo, "option0", "red")
    assert widgets(page, combo) == options(2)
    assert values(page, combo) == {"choice": "red", "option0": "red", "option1": ""}
    set_text_widget(page, combo, "option1", "green")
    set_text_widget(page, combo, "option2", "blue")
    assert widgets(page, combo) == options(4)
    assert menu(page, combo) == ["red", "green", "blue"]
    choose(page, combo, "green")
    preview = add_node(page, "Preview as Text", canvas_point(page, 0.7, 0.3), expect_type="PreviewAny")
    wire(page, combo, 0, preview, 0)
    # the prompt carries the option widgets too, as ComfyUI's frontend sends them
    prompt = page.evaluate("window.weft.apiPrompt()")[str(combo)]
    assert prompt["class_type"] == "CustomCombo"
    assert prompt["inputs"] == {
        "choice": "green",
        "option0": "red",
        "option1": "green",
        "option2": "blue",
        "option3": "",
    }
    assert shown_text(page, preview) == ["green"]

    # the chosen option edited: the choice follows it
    set_text_widget(page, combo, "option1", "lime")
    assert values(page, combo)["choice"] == "lime" and menu(page, combo) == ["red", "lime", "blue"]
    # ... cleared: it goes, the later options move up, the choice takes the one in its place
    set_text_widget(page, combo, "option1", "")
    assert widgets(page, combo) == options(3)
    assert values(page, combo) == {"choice": "blue", "option0": "red", "option1": "blue", "option2": ""}
    assert shown_text(page, preview) == ["blue"]
    # the last one cleared: the choice takes the one before
    set_text_widget(page, combo, "option1", "")
    assert values(page, combo) == {"choice": "red", "option0": "red", "option1": ""}

    # each step is one undoable edit, options and choice together
    page.keyboard.press("Control+z")
    assert widgets(page, combo) == options(3)
    assert values(page, combo) == {"choice": "blue", "option0": "red", "option1": "blue", "option2": ""}
    page.keyboard.press("Control+z")
    assert values(page, combo) == {
        "choice": "lime",
        "option0": "red",
        "option1": "lime",
        "option2": "blue",
        "option3": "",
    }
    page.keyboard.press("Control+z")
    assert values(page, combo)["choice"] == "green" and menu(page, combo) == ["red", "green", "blue"]
    page.keyboard.press("Control+y")
    assert values(page, combo)["choice"] == "lime"
    assert shown_text(page, preview) == ["lime"]

    # every option cleared: nothing to choose
    for _ in range(3):
        set_text_widget(page, combo, "option0", "")
    assert widgets(page, combo) == options(1) and values(page, combo) == {"choice": "", "option0": ""}


def test_the_choice_shows_in_the_widget_its_output_drives(page):
    """As in ComfyUI's frontend, a choice made is copied into the widget of a socket the
    combo's output feeds (here a String node's value, turned into a socket by the link)."""
    new_tab(page)
    combo = add_node(page, "Custom Combo", canvas_point(page, 0.25, 0.3), expect_type="CustomCombo")
    for i, word in enumerate(["one", "two"]):
        set_text_widget(page, combo, f"option{i}", word)
    string = add_node(page, "String", canvas_point(page, 0.55, 0.3), expect_type="PrimitiveString")
    drag(page, socket(page, combo, "output", 0), widget_center(page, string, "value"))
    page.wait_for_function(f"() => window.weft.state.links.some(l => l.target_id === {string})")
    choose(page, combo, "two")
    assert values(page, string)["value"] == "two"
    preview = add_node(page, "Preview as Text", canvas_point(page, 0.8, 0.3), expect_type="PreviewAny")
    wire(page, string, 0, preview, 0)
    assert shown_text(page, preview) == ["two"]
    for _ in ("the link", "the preview node", "the choice, and its copy with it"):
        page.keyboard.press("Control+z")
    assert values(page, combo)["choice"] == "one" and values(page, string)["value"] == ""


def comfy_file(widgets_values: list[Any]) -> dict[str, Any]:
    """A workflow as ComfyUI's frontend 1.35.9 saves it: a Custom Combo into Preview as Text."""
    return {
        "id": "0c7d3bb6-1f0e-4c51-9d5d-5f9d2f1b6a10",
        "revision": 0,
        "last_node_id": 2,
        "last_link_id": 1,
        "nodes": [
            {
                "id": 1,
                "type": "CustomCombo",
                "pos": [100, 100],
                "size": [270, 178],
                "flags": {},
                "order": 0,
                "mode": 0,
                "inputs": [
                    {
                        "localized_name": "choice",
                        "name": "choice",
                        "type": "COMBO",
                        "widget": {"name": "choice"},
                        "link": None,
                    }
                ],
                "outputs": [{"localized_name": "STRING", "name": "STRING", "type": "STRING", "links": [1]}],
                "properties": {"cnr_id": "comfy-core", "ver": "0.8.0", "Node name for S&R": "CustomCombo"},
                "widgets_values": widgets_values,
            },
            {
                "id": 2,
                "type": "PreviewAny",
                "pos": [450, 100],
                "size": [210, 88],
                "flags": {},
                "order": 1,
                "mode": 0,
                "inputs": [{"localized_name": "source", "name": "source", "type": "*", "link": 1}],
                "outputs": [{"localized_name": "STRING", "name": "STRING", "type": "STRING", "links": None}],
                "properties": {"cnr_id": "comfy-core", "ver": "0.8.0", "Node name for S&R": "PreviewAny"},
                "widgets_values": [],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "*"]],
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 1, "offset": [0, 0]}, "frontendVersion": "1.35.9"},
        "version": 0.4,
    }


ROUND_TRIP = """async wf => {
    const app = window.weft;
    const {fromAnyDocument, toApiPrompt} = await import("./js/serialize.js");
    app.loadGraph(fromAnyDocument(wf, app.defs), "ComfyUI file");
    const n = app.state.nodes.find(m => m.type === "CustomCombo");
    const comfy = app.comfyWorkflow(), api = app.apiPrompt(), doc = app.document();
    const back = {};
    for (const [format, d] of Object.entries({comfy, api, doc})) {
        const g = fromAnyDocument(JSON.parse(JSON.stringify(d)), app.defs);
        back[format] = {values: g.nodes.find(m => m.type === "CustomCombo").widgets_values, api: toApiPrompt(g, app.defs)};
    }
    return {values: n.widgets_values, choices: app.defFor(n).inputs[0].choices,
            saved: comfy.nodes.find(m => m.type === "CustomCombo").widgets_values, api, back};
}"""


def test_a_comfyui_workflow_with_a_custom_combo_round_trips(page):
    new_tab(page)
    # ComfyUI's frontend writes [choice, option0, option1, ..., the empty last one]
    result = page.evaluate(ROUND_TRIP, comfy_file(["b", "a", "b", "c", ""]))
    assert result["values"] == {"choice": "b", "option0": "a", "option1": "b", "option2": "c", "option3": ""}
    assert result["choices"] == ["a", "b", "c"]
    assert result["saved"] == ["b", "a", "b", "c", ""]
    sent = {"choice": "b", "option0": "a", "option1": "b", "option2": "c", "option3": ""}
    assert result["api"]["1"] == {"inputs": sent, "class_type": "CustomCombo", "_meta": {"title": "Custom Combo"}}
    for format, back in result["back"].items():
        assert back["values"] == result["values"] and back["api"] == result["api"], format
    assert widgets(page, 1) == options(4)
    assert menu(page, 1) == ["a", "b", "c"]
    assert shown_text(page, 2) == ["b"]

    # a file with an option cleared in the middle (ComfyUI's frontend keeps its empty widget) and
    # a choice among none of its options: read and written as they are, nothing moved on load
    new_tab(page)
    result = page.evaluate(ROUND_TRIP, comfy_file(["gone", "x", "", "y", ""]))
    assert result["saved"] == ["gone", "x", "", "y", ""]
    assert result["choices"] == ["x", "y"]
    assert result["api"]["1"]["inputs"] == {
        "choice": "gone",
        "option0": "x",
        "option1": "",
        "option2": "y",
        "option3": "",
    }
    assert shown_text(page, 2) == ["gone"]  # the server runs any choice, as ComfyUI's does
    # the first edit of its options tidies them and picks a listed choice
    set_text_widget(page, 1, "option2", "z")
    assert values(page, 1) == {"choice": "x", "option0": "x", "option1": "z", "option2": ""}
    assert shown_text(page, 2) == ["x"]

    # many options (each read at once, not one reading of the file per option)
    new_tab(page)
    many = ["w17", *(f"w{i}" for i in range(40)), ""]
    result = page.evaluate(ROUND_TRIP, comfy_file(many))
    assert result["saved"] == many and result["choices"] == many[1:-1]


def test_an_api_prompt_with_only_a_choice_opens(page):
    """A script's prompt may name the choice alone: it opens with one empty option and keeps
    the choice until the options are edited."""
    new_tab(page)
    prompt = {
        "1": {"class_type": "CustomCombo", "inputs": {"choice": "scripted"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    page.evaluate(
        """p => import("./js/serialize.js").then(m => window.weft.loadGraph(m.fromAnyDocument(p, window.weft.defs), "API"))""",
        prompt,
    )
    page.wait_for_function("() => window.weft.tab.name === 'API'")
    assert values(page, 1) == {"choice": "scripted", "option0": ""}
    assert page.evaluate("window.weft.apiPrompt()")["1"]["inputs"] == {"choice": "scripted", "option0": ""}
    missing = page.evaluate(
        """() => import("./js/missing.js").then(m => m.findMissing(window.weft.state, n => window.weft.defFor(n)))"""
    )
    assert missing["values"] == []  # not reported as a missing choice: the server takes any
    assert shown_text(page, 2) == ["scripted"]


def test_frames_drawn_from_kept_state_follow_typed_options(page):
    """The node's definition and layout are kept between frames while its options stay (no
    work per frame), and frames drawn from what was kept equal fresh ones after each change."""
    new_tab(page)
    result = page.evaluate(
        f"""async () => {{
            const app = window.weft, r = app.renderer;
            const same = {SAME_AS_FRESH};
            const n = app.cmd("Add", () => app.addNodeRaw(app.defs.CustomCombo, [40, 60]));
            const out = {{steps: []}};
            r.draw();
            const def = app.defFor(n), lay = r.layoutCache.kept.get(n);
            r.draw();
            out.kept = app.defFor(n) === def && r.layoutCache.kept.get(n) === lay;
            const edits = [
                () => {{ n.widgets_values.option0 = "alpha"; }},  // in place: a spare widget shows
                () => app.cmd("Type", () => {{ n.widgets_values.option1 = "beta"; }}),
                () => app.cmd("Choose", () => {{ n.widgets_values.choice = "beta"; }}),
                () => app.cmd("Clear", () => {{ n.widgets_values.option0 = ""; }}),
            ];
            for (const edit of edits) {{
                const before = app.defFor(n);
                edit();
                const result = await same();
                out.steps.push({{canvas: result.canvas, widgets: r.layout(n).widgets.map(w => w.name),
                                 newDef: app.defFor(n) !== before, values: {{...n.widgets_values}}}});
            }}
            return out;
        }}"""
    )
    assert result["kept"], result
    assert all(step["canvas"] for step in result["steps"]), result["steps"]
    assert [step["widgets"] for step in result["steps"]] == [options(2), options(3), options(3), options(2)]
    assert [step["newDef"] for step in result["steps"]] == [True, True, False, True]
    assert result["steps"][-1]["values"] == {"choice": "beta", "option0": "beta", "option1": ""}
