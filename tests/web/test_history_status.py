"""The history panel's rows: how each run ended (success, error, interrupted: ComfyUI's history
marks an interrupted run "error", its execution_interrupted message tells them apart), when
it started and how long it took, from the entry's status messages. A server of its own."""

from __future__ import annotations

import re

from tests.web import own_server
from tests.web.helpers import add_node, canvas_point, drag, new_tab, set_text_widget, socket, title

web_server = own_server.web_server
context = own_server.context


def finished(page, server, prompt_id: str) -> dict:
    for _ in range(300):
        status, found = server.get(f"/history/{prompt_id}")
        if status == 200 and found.get(prompt_id, {}).get("status", {}).get("messages"):
            return found[prompt_id]
        page.wait_for_timeout(100)
    raise AssertionError(f"run {prompt_id} did not finish")


def queue_and_wait(page, server) -> tuple[str, dict]:
    before = page.evaluate("window.weft.lastPromptId || ''")
    page.locator("#canvas").focus()
    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"() => (window.weft.lastPromptId || '') !== {before!r}")
    prompt_id = page.evaluate("window.weft.lastPromptId")
    return prompt_id, finished(page, server, prompt_id)


def timestamps(entry: dict) -> tuple[int, int]:
    messages = dict((m[0], m[1]) for m in entry["status"]["messages"])
    start = messages["execution_start"]["timestamp"]
    end = next(
        messages[e]["timestamp"]
        for e in ("execution_success", "execution_error", "execution_interrupted")
        if e in messages
    )
    return start, end


def test_history_rows_show_status_start_and_duration(page, web_server, screenshots):
    new_tab(page)
    slow = add_node(page, "TestSlow", canvas_point(page, 0.1, 0.3), expect_type="TestSlow")
    show = add_node(page, "preview as text", canvas_point(page, 0.45, 0.3), expect_type="PreviewAny")
    drag(page, socket(page, slow, "output", 0), title(page, show))
    set_text_widget(page, slow, "steps", "5")
    page.click("#queue-toggle")

    # a run that succeeds
    ok_id, ok_entry = queue_and_wait(page, web_server)

    # a run interrupted while it runs
    set_text_widget(page, slow, "steps", "400")
    set_text_widget(page, slow, "step_seconds", "0.05")
    page.locator("#canvas").focus()
    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"() => window.weft.runtime.progress[{slow}]")
    stopped_id = page.evaluate("window.weft.lastPromptId")
    page.click("#interrupt-button")
    stopped_entry = finished(page, web_server, stopped_id)
    assert stopped_entry["status"]["status_str"] == "error"  # as ComfyUI records it

    # a run whose node raises
    new_tab(page)
    fail = add_node(page, "TestFail", canvas_point(page, 0.1, 0.3), expect_type="TestFail")
    out = add_node(page, "preview as text", canvas_point(page, 0.45, 0.3), expect_type="PreviewAny")
    drag(page, socket(page, fail, "output", 0), title(page, out))
    failed_id, failed_entry = queue_and_wait(page, web_server)
    page.wait_for_selector("#error-panel:not([hidden])")

    expected = {ok_id: ("success", "done", ok_entry), stopped_id: ("interrupted", "interrupted", stopped_entry)}
    expected[failed_id] = ("error", "error", failed_entry)
    for prompt_id, (state, word, entry) in expected.items():
        row = page.locator(f"#queue-panel .queue-item.history[data-prompt-id='{prompt_id}']")
        row.wait_for()
        assert row.get_attribute("data-status") == state
        label = row.locator(".run-status")
        assert label.inner_text() == f"#{entry['prompt'][0]} {word}"
        assert {"success": "ok", "interrupted": "interrupted", "error": "failed"}[state] in label.get_attribute(
            "class"
        ).split()
        start, end = timestamps(entry)
        text = row.locator(".run-time").inner_text()
        clock, took = text.split(" · ")
        assert re.fullmatch(r"\d{1,2}:\d{2}:\d{2}( [AP]M)?", clock), text
        seconds = float(took.removesuffix(" s"))
        assert abs(seconds - (end - start) / 1000) < 0.006, (text, end - start)
        assert row.locator(".run-time").get_attribute("title").startswith("started ")
    # the interrupted run lasted while it ran; the panel's colours tell the three apart
    assert timestamps(stopped_entry)[1] - timestamps(stopped_entry)[0] >= 50
    colours = {
        state: page.locator(f"#queue-panel .queue-item.history[data-prompt-id='{pid}'] .run-status").evaluate(
            "el => getComputedStyle(el).color"
        )
        for pid, (state, _, _) in expected.items()
    }
    assert len(set(colours.values())) == 3, colours
    page.locator("#queue-panel").screenshot(path=str(screenshots / "history-status.png"))
