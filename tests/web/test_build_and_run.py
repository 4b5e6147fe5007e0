"""A user builds a workflow from scratch, runs it and sees the result on the output node."""

from __future__ import annotations

from tests.web.helpers import (
    add_node,
    canvas_point,
    drag,
    links,
    new_tab,
    node,
    set_text_widget,
    socket,
    state,
    title,
    wait_output,
    widget_center,
)


def test_add_wire_set_queue_text(page, screenshots):
    new_tab(page)
    text = add_node(page, "primitive string", canvas_point(page, 0.12, 0.25), expect_type="PrimitiveString")
    concat = add_node(page, "concat", canvas_point(page, 0.40, 0.25), expect_type="StringConcatenate")
    show = add_node(page, "preview text", canvas_point(page, 0.70, 0.25), expect_type="PreviewAny")

    set_text_widget(page, text, "value", "Hello")
    # dropping a STRING link on the string_a widget turns that widget into an input and wires it
    drag(page, socket(page, text, "output", 0), widget_center(page, concat, "string_a"))
    n = node(page, concat)
    assert [i["name"] for i in n["inputs"]] == ["string_a"]
    assert links(page) == [(text, 0, concat, 0)]
    set_text_widget(page, concat, "string_b", "world")
    set_text_widget(page, concat, "delimiter", ", ")
    # dropping on a node's body connects the first free compatible input
    drag(page, socket(page, concat, "output", 0), title(page, show))
    assert (concat, 0, show, 0) in links(page)

    page.keyboard.press("Control+Enter")
    assert wait_output(page, show, "text") == ["Hello, world"]
    page.screenshot(path=str(screenshots / "text-workflow-run.png"))

    prompt = page.evaluate("window.weft.apiPrompt()")
    assert prompt[str(concat)]["inputs"] == {"string_a": [str(text), 0], "string_b": "world", "delimiter": ", "}


def test_incompatible_types_refuse_to_connect(page):
    new_tab(page)
    length = add_node(page, "string length", canvas_point(page, 0.15, 0.3), expect_type="StringLength")
    concat = add_node(page, "concatenate", canvas_point(page, 0.5, 0.3), expect_type="StringConcatenate")
    page.mouse.click(*canvas_point(page, 0.5, 0.8))  # deselect
    drag(page, socket(page, length, "output", 0), title(page, concat))  # INT has nowhere to go
    assert links(page) == []
    page.wait_for_selector(".toast.warn")


def test_link_into_empty_space_offers_compatible_nodes(page):
    new_tab(page)
    length = add_node(page, "string length", canvas_point(page, 0.15, 0.3), expect_type="StringLength")
    drag(page, socket(page, length, "output", 0), canvas_point(page, 0.55, 0.35))
    page.wait_for_selector(".search-menu:not([hidden])")
    offered = page.locator(".search-results li").evaluate_all("els => els.map(e => e.dataset.type)")
    assert "MathInt" in offered and "PreviewAny" in offered
    assert "StringConcatenate" not in offered and "StringLength" not in offered
    page.keyboard.type("preview")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.weft.state.links.length === 1")
    (link,) = state(page)["links"]
    target = node(page, link["target_id"])
    assert target["type"] == "PreviewAny" and link["origin_id"] == length


def test_ctrl_enter_in_a_prompt_editor_keeps_the_text_and_queues(page):
    new_tab(page)
    text = add_node(page, "string multiline", canvas_point(page, 0.1, 0.3), expect_type="PrimitiveStringMultiline")
    show = add_node(page, "preview as text", canvas_point(page, 0.5, 0.3), expect_type="PreviewAny")
    drag(page, socket(page, text, "output", 0), title(page, show))
    x, y = widget_center(page, text, "value")
    page.mouse.click(x, y)
    editor = page.locator(".widget-editor[data-widget='value']")
    editor.fill("a castle\non a hill")
    editor.press("Control+Enter")
    assert wait_output(page, show, "text") == ["a castle\non a hill"]
    assert node(page, text)["widgets_values"]["value"] == "a castle\non a hill"


def test_add_a_node_by_browsing_categories(page):
    new_tab(page)
    page.mouse.click(*canvas_point(page, 0.3, 0.3), button="right")
    page.click(".menu-item:has-text('Browse nodes by category')")
    page.click(".category-menu .menu-item:has-text('utils ▸')")
    page.click(".category-menu .menu-item:has-text('string ▸')")
    page.click(".category-menu .menu-item:has-text('Concatenate')")
    assert [n["type"] for n in state(page)["nodes"]] == ["StringConcatenate"]
