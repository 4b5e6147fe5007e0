"""The images panel: the runs' outputs (from /history, then the other files of output/) and the
files of input/ (ComfyUI's /internal/files/input) as thumbnails; a click opens the viewer on
that list. An output whose run is no longer in the history still loads its workflow, from
the PNG's own text chunks. A server of its own per test: the folders are the server's."""

from __future__ import annotations

import io
import os

from PIL import Image

from tests.web import own_server
from tests.web.helpers import add_node, canvas_point, new_tab, set_text_widget, state, wait_output, wire

web_server = own_server.web_server
context = own_server.context


def put_input(server, name: str, color: tuple[int, int, int], size: tuple[int, int], mtime: int) -> None:
    folder = server.base_dir / "input"
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    (folder / name).write_bytes(buffer.getvalue())
    os.utime(folder / name, (mtime, mtime))


def test_images_panel_outputs_and_inputs(page, web_server, screenshots):
    put_input(web_server, "older.png", (200, 40, 40), (30, 20), 1_700_000_000)
    put_input(web_server, "newer.png", (40, 40, 200), (24, 36), 1_700_000_100)
    (web_server.base_dir / "input" / "notes.txt").write_text("not an image")
    new_tab(page)
    src = add_node(page, "WebTestImage", canvas_point(page, 0.25, 0.2), expect_type="WebTestImage")
    set_text_widget(page, src, "steps", "1")
    save = add_node(page, "SaveImage", canvas_point(page, 0.5, 0.2), expect_type="SaveImage")
    wire(page, src, 0, save, 0)
    queued = state(page)
    page.locator("#canvas").focus()
    page.keyboard.press("Control+Enter")
    (image,) = wait_output(page, save, "images")

    # I opens the panel (a panel of the left dock): the run's output first
    page.locator("#canvas").focus()
    page.keyboard.press("i")
    panel = page.locator("#image-gallery")
    panel.wait_for()
    assert page.locator("#images-toggle").get_attribute("aria-pressed") == "true"
    thumbs = panel.locator(".gal-thumb")
    thumbs.first.wait_for()
    assert thumbs.evaluate_all("els => els.map(e => e.dataset.filename)") == [image["filename"]]
    assert panel.locator(".gal-tab-outputs").inner_text() == "Outputs (1)"
    page.wait_for_function("() => document.querySelector('#image-gallery .gal-thumb img').naturalWidth === 64")
    page.screenshot(path=str(screenshots / "images-panel.png"))

    # Inputs: the files of input/, newest first, images only
    panel.locator(".gal-tab-inputs").click()
    page.wait_for_function("() => document.querySelectorAll('#image-gallery .gal-thumb').length === 2")
    assert thumbs.evaluate_all("els => els.map(e => e.dataset.filename)") == ["newer.png", "older.png"]
    page.wait_for_function(
        "() => [...document.querySelectorAll('#image-gallery .gal-thumb img')].every(i => i.naturalWidth > 0)"
    )
    thumbs.nth(0).click()
    viewer = page.locator("#image-viewer")
    viewer.wait_for()
    page.wait_for_function("() => document.querySelector('#image-viewer .iv-image').naturalWidth === 24")
    assert viewer.get_attribute("data-filename") == "newer.png"
    assert "input/" in viewer.locator(".iv-caption").inner_text()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('#image-viewer .iv-image').naturalWidth === 30")
    assert viewer.get_attribute("data-filename") == "older.png"
    assert viewer.locator(".iv-seed").is_disabled()  # no run behind an input file
    page.keyboard.press("Escape")
    viewer.wait_for(state="detached")

    # with the history cleared, the output is still listed (from output/) and its PNG still
    # carries its workflow
    page.click("#queue-toggle")
    page.locator("#queue-panel button:has-text('Clear history')").click()
    page.wait_for_function("() => !document.querySelector('#queue-panel .queue-item.history')")
    assert web_server.get("/history")[1] == {}
    panel.locator(".gal-tab-outputs").click()
    panel.locator(".gal-refresh").click()
    page.wait_for_function(
        f"() => [...document.querySelectorAll('#image-gallery .gal-thumb')].map(e => e.dataset.filename).join() === {image['filename']!r}"
    )
    thumbs.first.click()
    viewer.wait_for()
    assert "run #" not in viewer.locator(".iv-pos").inner_text()
    tabs = page.locator("#tabs .tab").count()
    viewer.locator(".iv-load").click()
    page.wait_for_function(f"() => document.querySelectorAll('#tabs .tab').length === {tabs + 1}")
    loaded = state(page)
    assert [(n["id"], n["type"]) for n in loaded["nodes"]] == [(n["id"], n["type"]) for n in queued["nodes"]]
    assert loaded["links"] == queued["links"]
    page.keyboard.press("i")
    panel.wait_for(state="hidden")
