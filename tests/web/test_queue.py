"""Queueing: batch count, the queue panel, cancelling a pending prompt, interrupting the
running one, the running node highlighted with its progress."""

from __future__ import annotations

from tests.web.helpers import add_node, canvas_point, drag, new_tab, set_text_widget, socket, title


def test_batch_queue_cancel_and_interrupt(page, screenshots):
    new_tab(page)
    slow = add_node(page, "TestSlow", canvas_point(page, 0.1, 0.3), expect_type="TestSlow")
    show = add_node(page, "preview as text", canvas_point(page, 0.45, 0.3), expect_type="PreviewAny")
    drag(page, socket(page, slow, "output", 0), title(page, show))
    set_text_widget(page, slow, "steps", "400")
    set_text_widget(page, slow, "step_seconds", "0.05")
    page.fill("#batch-count", "3")
    page.click("#queue-toggle")
    page.click("#queue-button")
    # the running node is highlighted and shows progress
    page.wait_for_function(
        f"() => String(window.weft.runtime.executing) === '{slow}' && window.weft.runtime.progress[{slow}]"
    )
    page.wait_for_selector("#queue-panel .queue-item.running")
    page.wait_for_function("() => document.querySelectorAll('#queue-panel .queue-item.pending').length === 2")
    page.wait_for_function("() => parseFloat(document.getElementById('progress-bar').style.width) > 0")
    page.screenshot(path=str(screenshots / "running-with-queue.png"))

    # cancel the last pending prompt
    pending = page.locator("#queue-panel .queue-item.pending")
    last_id = pending.nth(1).get_attribute("data-prompt-id")
    pending.nth(1).locator("button.cancel").click()
    page.wait_for_function("() => document.querySelectorAll('#queue-panel .queue-item.pending').length === 1")
    assert page.locator(f"#queue-panel .queue-item.pending[data-prompt-id='{last_id}']").count() == 0

    # interrupt the running one: the next pending prompt starts
    running_id = page.locator("#queue-panel .queue-item.running").get_attribute("data-prompt-id")
    page.click("#interrupt-button")
    page.wait_for_selector(".toast:has-text('interrupted')")
    page.wait_for_function(
        f"() => {{ const r = document.querySelector('#queue-panel .queue-item.running'); return r && r.dataset.promptId !== '{running_id}'; }}"
    )
    page.locator("#queue-panel .queue-item.running button").click()  # interrupt from the panel
    page.wait_for_function(
        "() => !document.querySelector('#queue-panel .queue-item.running') && !document.querySelector('#queue-panel .queue-item.pending')"
    )
    page.wait_for_function("() => window.weft.runtime.executing === null")
    page.wait_for_function(
        f"() => document.querySelector(\"#queue-panel .queue-item.history[data-prompt-id='{running_id}']\")"
    )
    assert page.locator(f"#queue-panel .queue-item.history[data-prompt-id='{last_id}']").count() == 0


def test_history_entry_loads_its_workflow(page):
    new_tab(page)
    text = add_node(page, "primitive string", canvas_point(page, 0.1, 0.3), expect_type="PrimitiveString")
    show = add_node(page, "preview as text", canvas_point(page, 0.45, 0.3), expect_type="PreviewAny")
    drag(page, socket(page, text, "output", 0), title(page, show))
    set_text_widget(page, text, "value", "from history")
    queued = page.evaluate("JSON.parse(JSON.stringify(window.weft.state))")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"() => window.weft.runtime.outputs[{show}]")
    set_text_widget(page, text, "value", "edited since")
    page.click("#queue-toggle")
    prompt_id = page.evaluate("window.weft.lastPromptId")
    row = page.locator(f"#queue-panel .queue-item.history[data-prompt-id='{prompt_id}']")
    row.wait_for()
    tabs = page.locator("#tabs .tab").count()
    row.locator("button:has-text('Load')").click()
    page.wait_for_function(f"() => document.querySelectorAll('#tabs .tab').length === {tabs + 1}")
    loaded = page.evaluate("JSON.parse(JSON.stringify(window.weft.state))")
    assert loaded["nodes"] == queued["nodes"] and loaded["links"] == queued["links"]
    assert page.evaluate(f"window.weft.runtime.outputs[{show}].text") == ["from history"]
