"""ComfyUI's v3 dynamic inputs on the canvas, driven with the mouse and keyboard against a real
server that loads the dynamic-input test pack (tests/plugins/dynamic_packs): an Autogrow grows a
copy as its last copy is linked and closes gaps when one is unlinked, a DynamicCombo's option
brings its own widgets and sockets (nested ones too), MatchType sockets take the type of their
links and refuse others. Each graph is queued and the arguments the node's ``execute`` received
(its text output) are checked; workflows come back the same from Weft's, ComfyUI's and the API
format, and what the renderer keeps between frames follows every such change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import LiveServer, start_server
from tests.web.conftest import web_registry
from tests.web.helpers import (
    add_node,
    canvas_point,
    drag,
    links,
    new_tab,
    node,
    set_text_widget,
    socket,
    title,
    wait_output,
    widget_center,
    wire,
)
from tests.web.test_draw_caches import SAME_AS_FRESH

DYNAMIC_PACKS = Path(__file__).resolve().parents[1] / "plugins" / "dynamic_packs"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
INT_COLOR = (0x29, 0x69, 0x9C)  # layout.js TYPE_COLORS.INT
STRING_COLOR = (0x77, 0xBB, 0x66)


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The web tests' server with the dynamic-input pack loaded (this module's tests only)."""
    live = start_server(
        tmp_path_factory.mktemp("weft-web-dynamic"),
        web_registry(),
        load_plugins=True,
        extra_custom_node_dirs=[DYNAMIC_PACKS],
    )
    try:
        yield live
    finally:
        live.stop()


# -- steps and reads -----------------------------------------------------------------------------
def names(page, node_id: int) -> list[str]:
    return [i["name"] for i in node(page, node_id)["inputs"]]


def labels(page, node_id: int) -> list[str]:
    return [i.get("label", i["name"]) for i in node(page, node_id)["inputs"]]


def widgets(page, node_id: int) -> list[str]:
    """The widgets the node shows, as laid out for drawing."""
    return page.evaluate(
        f"""() => {{ const app = window.weft, n = app.state.nodes.find(m => m.id === {node_id});
            return app.renderer.layout(n).widgets.map(w => w.name); }}"""
    )


def choose(page, node_id: int, widget: str, value: str) -> None:
    """Click a combo widget and pick from its menu."""
    page.mouse.click(*widget_center(page, node_id, widget))
    page.wait_for_selector(".combo-menu")
    page.click(f".combo-menu .menu-item span:text-is('{value}')")
    page.wait_for_function(
        f"() => window.weft.state.nodes.find(n => n.id === {node_id}).widgets_values[{json.dumps(widget)}] === {json.dumps(value)}"
    )


def delete_node(page, node_id: int) -> None:
    page.mouse.click(*title(page, node_id))
    page.keyboard.press("Delete")
    page.wait_for_function(f"() => !window.weft.state.nodes.some(n => n.id === {node_id})")


def received(page, node_id: int) -> dict[str, Any]:
    """Queue the graph; the arguments the node's ``execute`` got (its text output is their JSON)."""
    page.evaluate(f"() => {{ delete window.weft.runtime.outputs[{node_id}]; }}")
    page.click("#queue-button")
    (text,) = wait_output(page, node_id, "text")
    return json.loads(text)


def pixel(page, x: float, y: float) -> tuple[int, int, int]:
    """The canvas's colour at a client point, from a frame drawn now."""
    return tuple(
        page.evaluate(
            f"""() => {{ const r = window.weft.renderer; r.draw();
                const box = r.canvas.getBoundingClientRect(), k = r.canvas.width / box.width;
                const d = r.ctx.getImageData(Math.round(({x} - box.left) * k), Math.round(({y} - box.top) * k), 1, 1).data;
                return [d[0], d[1], d[2]]; }}"""
        )
    )


def near(color: tuple[int, ...], want: tuple[int, ...], tol: int = 24) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(color, want, strict=True))


def source(page, kind: str, value: str, at: tuple[float, float]) -> int:
    """A DynInt / DynFloat / DynText node with its value typed in."""
    node_id = add_node(page, kind, canvas_point(page, *at), expect_type=kind)
    set_text_widget(page, node_id, "value", value)
    return node_id


# -- Autogrow ------------------------------------------------------------------------------------------
def test_autogrow_grows_as_its_last_copy_is_linked_and_closes_gaps(page):
    new_tab(page)
    collect = add_node(page, "DynCollect", canvas_point(page, 0.45, 0.35), expect_type="DynCollect")
    # min 2: two copies, named as ComfyUI names them (prefix + index), labelled by the copy's name
    assert names(page, collect) == ["values.value0", "values.value1"]
    assert labels(page, collect) == ["value0", "value1"]
    floats = [source(page, "DynFloat", v, (0.06, 0.08 + 0.2 * i)) for i, v in enumerate(["1.5", "2", "4", "0.25"])]
    grown = [f"values.value{i}" for i in range(4)]
    wire(page, floats[0], 0, collect, 0)
    assert names(page, collect) == grown[:2]  # not the last copy: nothing grows
    wire(page, floats[1], 0, collect, 1)
    assert names(page, collect) == grown[:3]
    wire(page, floats[2], 0, collect, 2)
    assert names(page, collect) == grown
    wire(page, floats[3], 0, collect, 3)
    assert names(page, collect) == grown  # max 4
    assert [(o, t) for o, _, t, _ in links(page) if t == collect] == list(zip(floats, [collect] * 4, strict=True))
    prompt = page.evaluate("window.weft.apiPrompt()")[str(collect)]["inputs"]
    assert prompt == {**{name: [str(f), 0] for name, f in zip(grown, floats, strict=True)}, "label": "sum"}
    assert received(page, collect) == {
        "values": {"value0": 1.5, "value1": 2.0, "value2": 4.0, "value3": 0.25},
        "label": "sum",
    }

    # value1's source deleted: the later links move up a copy (as ComfyUI's frontend does)
    delete_node(page, floats[1])
    assert names(page, collect) == grown
    assert sorted((o, s) for o, _, t, s in links(page) if t == collect) == [
        (floats[0], 0),
        (floats[2], 1),
        (floats[3], 2),
    ]
    # the link of value2 picked up and dropped on empty canvas: the spare copies beyond one go
    drag(page, socket(page, collect, "input", 2), canvas_point(page, 0.75, 0.55))
    page.wait_for_selector(".search-menu:not([hidden])")
    page.keyboard.press("Escape")
    page.wait_for_function(f"() => window.weft.state.nodes.find(n => n.id === {collect}).inputs.length === 3")
    assert names(page, collect) == grown[:3]
    assert sorted((o, s) for o, _, t, s in links(page) if t == collect) == [(floats[0], 0), (floats[2], 1)]
    assert received(page, collect)["values"] == {"value0": 1.5, "value1": 4.0}
    # each step is one undoable edit, the sockets with it
    page.keyboard.press("Control+z")
    assert names(page, collect) == grown and len([k for k in links(page) if k[2] == collect]) == 3
    page.keyboard.press("Control+z")
    assert names(page, collect) == grown
    assert sorted((o, s) for o, _, t, s in links(page) if t == collect) == [(f, i) for i, f in enumerate(floats)]


def test_autogrow_with_a_names_template(page):
    new_tab(page)
    named = add_node(page, "DynNamed", canvas_point(page, 0.45, 0.35), expect_type="DynNamed")
    assert names(page, named) == ["words.first"]  # min 1
    texts = [source(page, "DynText", w, (0.06, 0.1 + 0.22 * i)) for i, w in enumerate(["alpha", "beta", "gamma"])]
    for i, t in enumerate(texts):
        wire(page, t, 0, named, i)
    assert labels(page, named) == ["first", "second", "third"]  # no more names, no more copies
    assert received(page, named) == {"words": {"first": "alpha", "second": "beta", "third": "gamma"}}


# -- DynamicCombo ----------------------------------------------------------------------------------------
def test_dynamic_combo_option_brings_its_own_inputs(page):
    new_tab(page)
    resize = add_node(page, "DynResize", canvas_point(page, 0.45, 0.33), expect_type="DynResize")
    assert widgets(page, resize) == ["mode", "mode.multiplier", "batch"]
    assert node(page, resize)["widgets_values"] == {"mode": "scale", "mode.multiplier": 1, "batch": 1}
    assert received(page, resize) == {"mode": {"multiplier": 1.0, "mode": "scale"}, "batch": 1}

    choose(page, resize, "mode", "size")
    assert widgets(page, resize) == ["mode", "mode.width", "mode.height", "mode.crop", "batch"]
    values = node(page, resize)["widgets_values"]
    assert values == {"mode": "size", "mode.width": 8, "mode.height": 8, "mode.crop": "center", "batch": 1}
    number = source(page, "DynInt", "9", (0.06, 0.15))
    # a link dropped on an option's widget turns it into a socket
    drag(page, socket(page, number, "output", 0), widget_center(page, resize, "mode.width"))
    assert node(page, resize)["inputs"] == [
        {"name": "mode.width", "type": "INT", "widget": "mode.width", "label": "width"}
    ]
    set_text_widget(page, resize, "mode.height", "3")
    assert received(page, resize) == {"mode": {"width": 9, "height": 3, "crop": "center", "mode": "size"}, "batch": 1}

    # another option: the socket and its link go with the widgets
    choose(page, resize, "mode", "scale")
    assert widgets(page, resize) == ["mode", "mode.multiplier", "batch"]
    assert node(page, resize)["inputs"] == [] and links(page) == []
    assert "mode.height" not in node(page, resize)["widgets_values"]
    # back to "size": what was set there comes back (as in ComfyUI), as a widget again
    choose(page, resize, "mode", "size")
    assert node(page, resize)["widgets_values"]["mode.height"] == 3 and node(page, resize)["inputs"] == []
    # each change of option is one undoable edit, the dropped link with it
    page.keyboard.press("Control+z")
    assert node(page, resize)["widgets_values"]["mode"] == "scale"
    page.keyboard.press("Control+z")
    assert node(page, resize)["widgets_values"]["mode"] == "size"
    assert names(page, resize) == ["mode.width"] and links(page) == [(number, 0, resize, 0)]

    # nested: the option's own DynamicCombo, whose options bring theirs
    choose(page, resize, "mode", "nested")
    assert widgets(page, resize) == ["mode", "mode.sub", "mode.sub.count", "batch"]
    choose(page, resize, "mode.sub", "b")
    assert widgets(page, resize) == ["mode", "mode.sub", "mode.sub.note", "batch"]
    set_text_widget(page, resize, "mode.sub.note", "hi")
    assert received(page, resize) == {"mode": {"sub": {"note": "hi", "sub": "b"}, "mode": "nested"}, "batch": 1}

    # an option that brings an Autogrow: its copies grow like any other
    choose(page, resize, "mode", "grow")
    assert widgets(page, resize) == ["mode", "batch"] and names(page, resize) == ["mode.ns.n0"]
    wire(page, number, 0, resize, 0)
    assert names(page, resize) == ["mode.ns.n0", "mode.ns.n1"] and labels(page, resize) == ["n0", "n1"]
    assert received(page, resize) == {"mode": {"ns": {"n0": 9}, "mode": "grow"}, "batch": 1}


def test_combo_arrows_step_through_the_options(page):
    new_tab(page)
    resize = add_node(page, "DynResize", canvas_point(page, 0.45, 0.35), expect_type="DynResize")
    r = page.evaluate(f"window.weft.widgetClientRect({resize}, 'mode')")
    page.mouse.click(r["left"] + r["width"] - 8, r["top"] + r["height"] / 2)  # the right arrow
    page.wait_for_function(f"() => window.weft.state.nodes.find(n => n.id === {resize}).widgets_values.mode === 'size'")
    assert widgets(page, resize) == ["mode", "mode.width", "mode.height", "mode.crop", "batch"]


def test_dynamic_slot_brings_its_inputs_while_linked(page):
    new_tab(page)
    hint = add_node(page, "DynHint", canvas_point(page, 0.45, 0.4), expect_type="DynHint")
    assert node(page, hint)["inputs"] == [{"name": "hint", "type": "INT"}] and widgets(page, hint) == ["base"]
    number = source(page, "DynInt", "9", (0.06, 0.4))
    wire(page, number, 0, hint, 0)
    assert widgets(page, hint) == ["base", "hint.strength", "hint.note"]
    set_text_widget(page, hint, "hint.strength", "0.75")
    assert received(page, hint) == {"base": 1, "hint": {"strength": 0.75, "note": "", "hint": 9}}
    # unlinked (picked up, dropped on empty canvas): its inputs go, and the prompt leaves them out
    drag(page, socket(page, hint, "input", 0), canvas_point(page, 0.75, 0.8))
    page.wait_for_selector(".search-menu:not([hidden])")
    page.keyboard.press("Escape")
    page.wait_for_function(f"() => !window.weft.state.links.some(l => l.target_id === {hint})")
    assert widgets(page, hint) == ["base"]
    assert page.evaluate("window.weft.apiPrompt()")[str(hint)]["inputs"] == {"base": 1}
    assert received(page, hint) == {"base": 1}
    page.keyboard.press("Control+z")
    assert widgets(page, hint) == ["base", "hint.strength", "hint.note"]
    assert node(page, hint)["widgets_values"]["hint.strength"] == 0.75


# -- MatchType --------------------------------------------------------------------------------------------
def test_match_type_sockets_follow_their_links(page):
    new_tab(page)
    switch = add_node(page, "DynSwitch", canvas_point(page, 0.4, 0.4), expect_type="DynSwitch")
    number = source(page, "DynInt", "5", (0.06, 0.15))
    text = source(page, "DynText", "x", (0.06, 0.55))
    only = add_node(page, "DynIntOnly", canvas_point(page, 0.72, 0.35), expect_type="DynIntOnly")
    show = add_node(page, "DynShow", canvas_point(page, 0.72, 0.65), expect_type="DynShow")
    sw = node(page, switch)
    assert [i["type"] for i in sw["inputs"]] == ["*", "*"] and sw["outputs"][0]["type"] == "*"
    wire(page, switch, 0, only, 0)  # an output of any type yet: it may feed an INT
    wire(page, switch, 0, show, 0)
    wire(page, number, 0, switch, 0)  # on_true: the template is INT now
    sw = node(page, switch)
    assert [i["type"] for i in sw["inputs"]] == ["*", "INT"] and sw["outputs"][0]["type"] == "INT"
    assert near(pixel(page, *socket(page, switch, "output", 0)), INT_COLOR)
    assert near(pixel(page, *socket(page, switch, "input", 0)), INT_COLOR)  # shows what its link carries
    # a STRING into the other input is refused, as any type mismatch is
    wire(page, text, 0, switch, 1)
    page.wait_for_selector(".toast:has-text('Cannot connect STRING to INT')")
    assert len(links(page)) == 3
    wire(page, number, 0, switch, 1)  # the same type is taken (both inputs are required)
    assert received(page, only) == {"value": 5}

    # the source deleted: nothing binds the template, its sockets take any type again
    delete_node(page, number)
    sw = node(page, switch)
    assert [i["type"] for i in sw["inputs"]] == ["*", "*"] and sw["outputs"][0]["type"] == "*"
    assert sorted(links(page)) == sorted([(switch, 0, only, 0), (switch, 0, show, 0)])
    # a STRING now: the output is STRING, and its link to the INT input goes
    wire(page, text, 0, switch, 0)
    sw = node(page, switch)
    assert [i["type"] for i in sw["inputs"]] == ["*", "STRING"] and sw["outputs"][0]["type"] == "STRING"
    assert sorted(links(page)) == sorted([(switch, 0, show, 0), (text, 0, switch, 0)])
    assert near(pixel(page, *socket(page, switch, "output", 0)), STRING_COLOR)
    page.keyboard.press("Control+z")
    assert sorted(links(page)) == sorted([(switch, 0, only, 0), (switch, 0, show, 0)])
    assert node(page, switch)["outputs"][0]["type"] == "*"


def test_match_type_allowed_types_and_a_chain(page):
    new_tab(page)
    pick = add_node(page, "DynNumberPick", canvas_point(page, 0.35, 0.4), expect_type="DynNumberPick")
    text = source(page, "DynText", "x", (0.06, 0.1))
    a, b = source(page, "DynFloat", "0.5", (0.06, 0.4)), source(page, "DynFloat", "2.5", (0.06, 0.7))
    assert [i["type"] for i in node(page, pick)["inputs"]] == ["INT,FLOAT", "INT,FLOAT"]
    wire(page, text, 0, pick, 0)
    page.wait_for_selector(".toast:has-text('Cannot connect STRING to INT,FLOAT')")
    wire(page, a, 0, pick, 0)
    wire(page, b, 0, pick, 1)
    assert node(page, pick)["outputs"][0]["type"] == "FLOAT"
    # the picked FLOAT goes on through a switch, whose output becomes FLOAT too
    switch = add_node(page, "DynSwitch", canvas_point(page, 0.6, 0.4), expect_type="DynSwitch")
    wire(page, pick, 0, switch, 0)
    wire(page, pick, 0, switch, 1)
    show = add_node(page, "DynShow", canvas_point(page, 0.85, 0.4), expect_type="DynShow")
    wire(page, switch, 0, show, 0)
    assert node(page, switch)["outputs"][0]["type"] == "FLOAT"
    set_switch = f"() => window.weft.state.nodes.find(n => n.id === {switch}).widgets_values.switch === false"
    page.mouse.click(*widget_center(page, switch, "switch"))
    page.wait_for_function(set_switch)
    assert received(page, show) == {"value": 2.5}


def test_autogrow_copies_share_their_match_type_template(page):
    new_tab(page)
    first = add_node(page, "DynFirstOf", canvas_point(page, 0.4, 0.4), expect_type="DynFirstOf")
    number = source(page, "DynInt", "7", (0.06, 0.35))
    text = source(page, "DynText", "x", (0.06, 0.65))
    assert [(i["name"], i["type"]) for i in node(page, first)["inputs"]] == [("items.item0", "INT,FLOAT,STRING")]
    wire(page, number, 0, first, 0)
    assert [(i["name"], i["type"]) for i in node(page, first)["inputs"]] == [
        ("items.item0", "INT,FLOAT,STRING"),
        ("items.item1", "INT"),
    ]
    assert node(page, first)["outputs"][0]["type"] == "INT"
    wire(page, text, 0, first, 1)
    page.wait_for_selector(".toast:has-text('Cannot connect STRING to INT')")
    assert names(page, first) == ["items.item0", "items.item1"]
    show = add_node(page, "DynShow", canvas_point(page, 0.75, 0.4), expect_type="DynShow")
    wire(page, first, 0, show, 0)
    assert received(page, show) == {"value": 7}


def test_core_nodes_on_dynamic_inputs_run_from_the_canvas(page):
    """ComfyUI's core BatchImagesNode (an Autogrow of IMAGE) and ResizeImageMaskNode (a MatchType
    input and a DynamicCombo), wired and set with the mouse; the pictures come out sized."""
    new_tab(page)
    images = [
        add_node(page, "WebTestImage", canvas_point(page, 0.06, y), expect_type="WebTestImage")
        for y in (0.05, 0.35, 0.65)
    ]
    batch = add_node(page, "BatchImagesNode", canvas_point(page, 0.3, 0.4), expect_type="BatchImagesNode")
    assert names(page, batch) == ["images.image0", "images.image1"]
    for i, image in enumerate(images):
        wire(page, image, 0, batch, i)
    assert names(page, batch) == [f"images.image{i}" for i in range(4)]
    resize = add_node(page, "ResizeImageMaskNode", canvas_point(page, 0.5, 0.4), expect_type="ResizeImageMaskNode")
    wire(page, batch, 0, resize, 0)
    assert node(page, resize)["outputs"][0]["type"] == "IMAGE"  # IMAGE,MASK bound by the link
    choose(page, resize, "resize_type", "scale dimensions")
    set_text_widget(page, resize, "resize_type.width", "32")
    set_text_widget(page, resize, "resize_type.height", "16")
    preview = add_node(page, "PreviewImage", canvas_point(page, 0.78, 0.4), expect_type="PreviewImage")
    wire(page, resize, 0, preview, 0)
    page.click("#queue-button")
    assert len(wait_output(page, preview, "images")) == 3
    sizes = page.evaluate(
        f"""() => Promise.all(window.weft.imageUrls(window.weft.state.nodes.find(n => n.id === {preview})).map(u =>
            new Promise((ok, bad) => {{ const im = new Image(); im.onload = () => ok([im.naturalWidth, im.naturalHeight]);
                im.onerror = bad; im.src = u; }})))"""
    )
    assert sizes == [[32, 16]] * 3


SWEEP = """async () => {
    const app = window.weft;
    const {fromAnyDocument, toApiPrompt} = await import("./js/serialize.js");
    const sorted = o => Object.entries(o).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const shape = g => g.nodes.map(n => [n.type, n.inputs, n.outputs, sorted(n.widgets_values)]);
    const report = [];
    for (const [type, def] of Object.entries(app.defs)) {
        if (!def.dynamic && !def.templated) continue;
        const combos = def.inputs.filter(i => i.dynamic === "combo");
        const keys = combos.length ? combos[0].choices : [undefined];
        for (const key of keys) {
            app.newTab(null, `${type} ${key}`);
            const n = app.cmd("Add", () => app.addNodeRaw(def, [0, 0]));
            if (key !== undefined) app.cmd("Choose", () => { n.widgets_values[combos[0].name] = key; });
            const api = app.apiPrompt();
            const same = ["document", "comfyWorkflow"].map(f => {
                const g = fromAnyDocument(JSON.parse(JSON.stringify(app[f]())), app.defs);
                return JSON.stringify(shape(g)) === JSON.stringify(shape(app.state))
                    && JSON.stringify(toApiPrompt(g, app.defs)) === JSON.stringify(api);
            });
            report.push({type, key, inputs: app.defFor(n).inputs.map(i => i.name), same});
            app.closeTab(app.active);
        }
    }
    return report;
}"""


def test_every_node_type_with_dynamic_inputs_adds_and_travels(page):
    """Each node type of the server with dynamic inputs or templates (the test pack's and the
    core ones), with each option of its first DynamicCombo: added, then saved in Weft's and
    ComfyUI's format and read back, the same node and the same prompt."""
    report = page.evaluate(SWEEP)
    types = {r["type"] for r in report}
    assert {"DynCollect", "DynResize", "DynHint", "DynSwitch", "BatchImagesNode", "ResizeImageMaskNode"} <= types
    assert len(report) > 20, report
    for r in report:
        assert r["same"] == [True, True], r
    resize = {r["key"]: r["inputs"] for r in report if r["type"] == "ResizeImageMaskNode"}
    assert resize["match size"] == ["input", "resize_type", "resize_type.match", "resize_type.crop", "scale_method"]


# -- saving and loading ------------------------------------------------------------------------------------
BUILD = """async () => {
    const app = window.weft;
    const {connect} = await import("./js/state.js");
    const ids = {};
    app.cmd("Build", () => {
        const add = (type, pos) => app.addNodeRaw(app.defs[type], pos);
        const c = add("DynCollect", [420, 40]), r = add("DynResize", [420, 320]), w = add("DynSwitch", [820, 40]);
        const f = [0, 1, 2].map(i => add("DynFloat", [40, 40 + 170 * i]));
        f[0].widgets_values.value = 1.5; f[1].widgets_values.value = 2; f[2].widgets_values.value = 4;
        const k = add("DynInt", [40, 560]);
        k.widgets_values.value = 3;
        w.widgets_values.switch = false;
        const s = add("DynShow", [1100, 40]);
        connect(app.state, f[0].id, 0, c.id, 0);
        connect(app.state, f[1].id, 0, c.id, 1);
        r.widgets_values.mode = "nested";
        Object.assign(ids, {c: c.id, r: r.id, w: w.id, s: s.id, k: k.id, f: f.map(n => n.id)});
    });
    // each its own edit, as a user makes them: a copy grows, the nested option's inputs come
    app.cmd("Link", () => connect(app.state, ids.f[2], 0, ids.c, 2));
    const r = app.state.nodes.find(n => n.id === ids.r);
    app.cmd("Sub", () => { r.widgets_values["mode.sub"] = "a"; });
    app.cmd("Count", () => { r.widgets_values["mode.sub.count"] = 6; });
    app.cmd("Switch", () => {
        connect(app.state, ids.c, 0, ids.w, 0);
        connect(app.state, ids.c, 0, ids.w, 1);
        connect(app.state, ids.w, 0, ids.s, 0);
    });
    return ids;
}"""

SHAPE = """g => g.nodes.map(n => ({id: n.id, inputs: n.inputs, outputs: n.outputs.map(o => o.type),
    values: n.widgets_values})).sort((a, b) => a.id - b.id)"""


def test_workflows_keep_grown_copies_and_chosen_options_in_every_format(page):
    new_tab(page)
    ids = page.evaluate(BUILD)
    assert names(page, ids["c"]) == [f"values.value{i}" for i in range(4)]
    assert widgets(page, ids["r"]) == ["mode", "mode.sub", "mode.sub.count", "batch"]
    assert node(page, ids["w"])["outputs"][0]["type"] == "FLOAT"
    result = page.evaluate(
        f"""async () => {{
            const app = window.weft;
            const {{fromAnyDocument, toApiPrompt}} = await import("./js/serialize.js");
            const shape = {SHAPE};
            const api = app.apiPrompt();
            const docs = {{weft: app.document(), comfy: app.comfyWorkflow(), api}};
            const out = {{shape: shape(app.state), api, comfy: docs.comfy, back: {{}}}};
            for (const [format, doc] of Object.entries(docs)) {{
                const g = fromAnyDocument(JSON.parse(JSON.stringify(doc)), app.defs);
                out.back[format] = {{shape: shape(g), api: toApiPrompt(g, app.defs),
                    links: g.links.map(l => [l.origin_id, l.origin_slot, l.target_id, l.target_slot]).sort()}};
            }}
            out.links = app.state.links.map(l => [l.origin_id, l.origin_slot, l.target_id, l.target_slot]).sort();
            return out;
        }}"""
    )
    api = result["api"]
    assert api[str(ids["c"])]["inputs"] == {
        "values.value0": [str(ids["f"][0]), 0],
        "values.value1": [str(ids["f"][1]), 0],
        "values.value2": [str(ids["f"][2]), 0],
        "label": "sum",
    }
    assert api[str(ids["r"])]["inputs"] == {"mode": "nested", "mode.sub": "a", "mode.sub.count": 6, "batch": 1}
    comfy = {n["id"]: n for n in result["comfy"]["nodes"]}
    # ComfyUI's UI format: an option's widget values right after its combo's, sockets by their full names
    assert comfy[ids["r"]]["widgets_values"] == ["nested", "a", 6, 1]
    assert [(i["name"], i.get("label")) for i in comfy[ids["c"]]["inputs"]] == [
        (f"values.value{i}", f"value{i}") for i in range(4)
    ]
    for format, back in result["back"].items():
        assert back["api"] == api, format
        if format != "api":  # an API prompt has neither positions nor the free copy's link state
            assert back["shape"] == result["shape"], format
            assert back["links"] == result["links"], format
    # the API-format prompt names only the linked copies; the free one after them comes back
    back_c = next(n for n in result["back"]["api"]["shape"] if n["id"] == ids["c"])
    assert [i["name"] for i in back_c["inputs"]] == [f"values.value{i}" for i in range(4)]

    # the ComfyUI file opened in a tab of its own runs as the graph did
    page.evaluate(
        """comfy => { const app = window.weft;
            import("./js/serialize.js").then(m => app.loadGraph(m.fromAnyDocument(comfy, app.defs), "from ComfyUI")); }""",
        result["comfy"],
    )
    page.wait_for_function("() => window.weft.tab.name === 'from ComfyUI'")
    assert received(page, ids["r"]) == {"mode": {"sub": {"count": 6, "sub": "a"}, "mode": "nested"}, "batch": 1}
    assert received(page, ids["s"]) == {"value": 7.5}

    # and the tabs come back after a reload
    before = page.evaluate(f"() => ({SHAPE})(window.weft.state)")
    page.evaluate("window.weft.persistNow()")
    page.reload()
    page.wait_for_function("() => document.body.dataset.ready === 'true'")
    assert page.evaluate(f"() => ({SHAPE})(window.weft.state)") == before


def test_a_comfyui_file_with_dynamic_inputs_opens(page):
    """A file as ComfyUI's frontend saves one: every widget also listed as an input slot, the
    copies' and options' sockets by their full names with labels, widget values positional."""
    workflow = {
        "last_node_id": 4,
        "last_link_id": 2,
        "nodes": [
            {
                "id": 1,
                "type": "DynFloat",
                "pos": [0, 0],
                "size": [210, 60],
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "FLOAT", "type": "FLOAT", "links": [1, 2]}],
                "widgets_values": [0.75],
            },
            {
                "id": 2,
                "type": "DynCollect",
                "pos": [300, 0],
                "size": [240, 130],
                "mode": 0,
                "inputs": [
                    {"name": "values.value0", "label": "value0", "type": "FLOAT", "link": 1},
                    {"name": "values.value1", "label": "value1", "type": "FLOAT", "link": 2},
                    {"name": "values.value2", "label": "value2", "type": "FLOAT", "link": None},
                    {"name": "label", "type": "STRING", "widget": {"name": "label"}, "link": None},
                ],
                "outputs": [{"name": "sum", "type": "FLOAT", "links": None}],
                "widgets_values": ["both"],
            },
            {
                "id": 3,
                "type": "DynResize",
                "pos": [300, 200],
                "size": [240, 180],
                "mode": 0,
                "inputs": [
                    {
                        "name": "mode.width",
                        "localized_name": "width",
                        "type": "INT",
                        "widget": {"name": "mode.width"},
                        "link": None,
                    }
                ],
                "outputs": [],
                "widgets_values": ["size", 5, 7, "disabled", 2],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "FLOAT"], [2, 1, 0, 2, 1, "FLOAT"]],
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }
    new_tab(page)
    page.evaluate(
        """wf => import("./js/serialize.js").then(m => window.weft.loadGraph(m.fromAnyDocument(wf, window.weft.defs), "ComfyUI file"))""",
        workflow,
    )
    page.wait_for_function("() => window.weft.tab.name === 'ComfyUI file'")
    assert names(page, 2) == ["values.value0", "values.value1", "values.value2"]
    assert widgets(page, 3) == ["mode", "mode.width", "mode.height", "mode.crop", "batch"]
    prompt = page.evaluate("window.weft.apiPrompt()")
    assert prompt["3"]["inputs"] == {
        "mode": "size",
        "mode.width": 5,
        "mode.height": 7,
        "mode.crop": "disabled",
        "batch": 2,
    }
    assert received(page, 2) == {"values": {"value0": 0.75, "value1": 0.75}, "label": "both"}
    assert received(page, 3) == {"mode": {"width": 5, "height": 7, "crop": "disabled", "mode": "size"}, "batch": 2}


# -- what the renderer keeps -------------------------------------------------------------------------------
EDITS = {
    "an option chosen (in place)": "g => { g.nodes.find(n => n.type === 'DynResize').widgets_values.mode = 'size'; }",
    "its inputs settled": "g => { window.weft.cmd('Settle', () => {}); }",
    "a copy added (in place)": """g => { g.nodes.find(n => n.type === 'DynCollect').inputs.push(
        {name: 'values.value2', type: 'FLOAT', label: 'value2'}); }""",
    "a nested option chosen (in place)": """g => { const r = g.nodes.find(n => n.type === 'DynResize');
        r.widgets_values.mode = 'nested'; r.widgets_values['mode.sub'] = 'b'; }""",
    "a template bound (in place)": """g => { const w = g.nodes.find(n => n.type === 'DynSwitch');
        w.inputs[1].type = 'INT'; w.outputs[0].type = 'INT'; }""",
}


def test_frames_drawn_from_kept_state_follow_dynamic_inputs(page):
    new_tab(page)
    page.evaluate(
        """() => { const app = window.weft;
            app.cmd("Build", () => {
                app.addNodeRaw(app.defs.DynResize, [40, 60]);
                app.addNodeRaw(app.defs.DynCollect, [420, 60]);
                app.addNodeRaw(app.defs.DynSwitch, [760, 60]);
            });
            app.state.extra.ds = {scale: 0.9, offset: [10.3, 20.7]}; }"""
    )
    first = page.evaluate(SAME_AS_FRESH)
    assert first["canvas"] and first["minimap"], first
    digests = [first["digest"]]
    for edit, fn in EDITS.items():
        page.evaluate(f"() => ({fn})(window.weft.state)")
        result = page.evaluate(SAME_AS_FRESH)
        assert result["canvas"], f"canvas drawn from kept state differs from a fresh one after: {edit}"
        digests.append(result["digest"])
    assert len(set(digests)) == len(digests), digests


def test_a_nodes_definition_and_layout_are_kept_while_it_stays(page):
    new_tab(page)
    result = page.evaluate(
        """async () => {
            const app = window.weft, r = app.renderer;
            const {layoutNode} = await import("./js/layout.js");
            const n = app.cmd("Add", () => app.addNodeRaw(app.defs.DynResize, [40, 60]));
            r.draw();
            const def = app.defFor(n), lay = r.layoutCache.get(n, def, app.runtime, r.customWidgets());
            r.draw();
            const kept = app.defFor(n) === def && r.layoutCache.get(n, app.defFor(n), app.runtime, r.customWidgets()) === lay;
            n.widgets_values.mode = "size";
            const after = app.defFor(n);
            const fresh = JSON.stringify(layoutNode(n, after, app.runtime, r.customWidgets()));
            const relaid = r.layoutCache.get(n, after, app.runtime, r.customWidgets());
            return {kept, newDef: after !== def, sameAsFresh: JSON.stringify(relaid) === fresh, relaid: relaid !== lay,
                    widgets: relaid.widgets.map(w => w.name)};
        }"""
    )
    assert result["kept"] and result["newDef"] and result["relaid"] and result["sameAsFresh"], result
    assert result["widgets"] == ["mode", "mode.width", "mode.height", "mode.crop", "batch"]


def test_frame_time_panning_300_dynamic_nodes(page, screenshots):
    """Panning a graph of dynamic nodes reuses each node's expanded definition and layout (no
    expansion per frame); the frame times go to test-artifacts/frame-time-dynamic.json."""
    new_tab(page)
    result = page.evaluate(
        """async () => {
            const app = window.weft, r = app.renderer;
            const {connect} = await import("./js/state.js");
            app.cmd("Build", () => {
                for (let i = 0; i < 300; i++) {
                    const pos = [(i % 20) * 330, Math.floor(i / 20) * 300];
                    const kind = ["DynResize", "DynCollect", "DynFloat", "DynSwitch"][i % 4];
                    const n = app.addNodeRaw(app.defs[kind], pos);
                    if (kind === "DynResize") n.widgets_values.mode = ["scale", "size", "nested", "grow"][i % 3];
                    if (kind === "DynSwitch") connect(app.state, n.id - 1, 0, n.id, 1);
                    if (kind === "DynFloat") connect(app.state, n.id, 0, n.id - 1, 0);
                }
            });
            const nodes = app.state.nodes;
            r.draw();
            const defs = nodes.map(n => app.defFor(n));
            const lays = nodes.map(n => r.layoutCache.kept.get(n));
            const draws = [];
            for (let i = 0; i < 120; i++) {
                const ds = app.state.extra.ds;
                ds.offset = [ds.offset[0] - 15, ds.offset[1] - 6];
                await new Promise(res => requestAnimationFrame(res));
                const t0 = performance.now();
                r.draw();
                draws.push(performance.now() - t0);
            }
            const sorted = [...draws].sort((a, b) => a - b);
            return {
                nodes: nodes.length, links: app.state.links.length,
                sameDefs: nodes.every((n, i) => app.defFor(n) === defs[i]),
                sameLayouts: nodes.every((n, i) => !lays[i] || r.layoutCache.kept.get(n) === lays[i]),
                median: sorted[Math.floor(sorted.length / 2)], p95: sorted[Math.floor(sorted.length * 0.95)],
            };
        }"""
    )
    page.screenshot(path=str(screenshots / "dynamic-inputs-300-nodes.png"))
    print(f"pan 300 dynamic nodes: median draw {result['median']:.2f} ms (p95 {result['p95']:.2f})")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "frame-time-dynamic.json").write_text(json.dumps(result, indent=2))
    assert result["nodes"] == 300 and result["links"] > 100
    assert result["sameDefs"] and result["sameLayouts"], result
