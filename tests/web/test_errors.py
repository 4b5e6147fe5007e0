"""Problems are shown where they are: validation errors on the node and input, execution
errors with their message and a traceback to unfold."""

from __future__ import annotations

from tests.web.helpers import add_node, canvas_point, drag, links, new_tab, set_text_widget, socket, title


def red_outline_pixels(page, node_id: int) -> int:
    """Count strongly red pixels across the left edge of a node's title bar, as drawn."""
    return page.evaluate(
        """(id) => {
            const app = window.weft, r = app.renderer, node = app.state.nodes.find(n => n.id === id);
            r.draw();
            const [sx, sy] = r.toScreen(node.pos[0], node.pos[1] - 15);  // left edge of the title bar
            const ctx = r.canvas.getContext("2d"), d = r.dpr;
            const px = ctx.getImageData(Math.round((sx - 4) * d), Math.round(sy * d), Math.round(8 * d), 1).data;
            let red = 0;
            for (let i = 0; i < px.length; i += 4) if (px[i] > 200 && px[i + 1] < 120 && px[i + 2] < 120) red++;
            return red;
        }""",
        node_id,
    )


def test_validation_error_highlights_node_and_input(page, screenshots):
    new_tab(page)
    length = add_node(page, "string length", canvas_point(page, 0.15, 0.3), expect_type="StringLength")
    show = add_node(page, "preview as text", canvas_point(page, 0.5, 0.3), expect_type="PreviewAny")
    drag(page, socket(page, length, "output", 0), title(page, show))
    assert links(page) == [(length, 0, show, 0)]
    # turn the "string" widget into an input socket from the context menu, and leave it unwired
    page.mouse.click(*title(page, length), button="right")
    page.click(".menu-item:has-text('Convert string to input')")
    assert page.evaluate(f"window.weft.state.nodes.find(n => n.id === {length}).inputs") == [
        {"name": "string", "type": "STRING", "widget": "string"}
    ]
    assert red_outline_pixels(page, length) == 0
    page.click("#queue-button")
    page.wait_for_selector(f"#error-panel:not([hidden]) .error-item[data-node='{length}']")
    assert "Required input is missing" in page.inner_text(f".error-item[data-node='{length}']")
    errors = page.evaluate("window.weft.runtime.errors")
    assert list(errors) == [str(length)]
    assert "string" in errors[str(length)]["inputs"]
    assert red_outline_pixels(page, length) > 0
    assert red_outline_pixels(page, show) == 0
    page.screenshot(path=str(screenshots / "validation-error.png"))

    # converting the input back to a widget fixes it; the errors clear on the next queue
    page.mouse.click(*title(page, length), button="right")
    page.click(".menu-item:has-text('Convert string to widget')")
    set_text_widget(page, length, "string", "four")
    page.click("#queue-button")
    page.wait_for_function(
        f"() => window.weft.runtime.outputs[{show}] && window.weft.runtime.outputs[{show}].text[0] === '4'"
    )
    assert page.evaluate("Object.keys(window.weft.runtime.errors).length") == 0
    assert page.locator("#error-panel").is_hidden()


def test_execution_error_shows_message_and_traceback(page, screenshots):
    new_tab(page)
    fail = add_node(page, "TestFail", canvas_point(page, 0.15, 0.3), expect_type="TestFail")
    show = add_node(page, "preview as text", canvas_point(page, 0.5, 0.3), expect_type="PreviewAny")
    drag(page, socket(page, fail, "output", 0), title(page, show))
    set_text_widget(page, fail, "message", "on purpose")
    page.keyboard.press("Control+Enter")
    item = page.locator(f"#error-panel .exec-error[data-node='{fail}']")
    item.wait_for()
    assert "TestFail says on purpose" in item.inner_text()
    assert "ValueError" in item.inner_text()
    traceback = page.locator("#error-panel details.traceback pre")
    assert not traceback.is_visible()
    page.click("#error-panel details.traceback summary")
    assert traceback.is_visible()
    assert "Traceback" in traceback.inner_text() or "raise" in traceback.inner_text()
    assert red_outline_pixels(page, fail) > 0
    page.screenshot(path=str(screenshots / "execution-error.png"))
