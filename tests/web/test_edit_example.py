"""The image-editing example in the canvas on a fresh install: open ``examples/edit_image_shapes.json``,
upload the picture its LoadImage names, Queue, and the edited picture shows what the target
prompt asks (the red circle turned blue, the rest kept), read back by the shapes judge."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.web.helpers import state, wait_output
from weft_tools.shapes import judge

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    from tests.support.server import serve_restoring_paths

    yield from serve_restoring_paths(tmp_path_factory.mktemp("weft-edit"))


def test_the_edit_example_opens_runs_on_an_uploaded_picture_and_edits_it(browser, fresh_server, screenshots):
    context = browser.new_context(viewport={"width": 1500, "height": 860})
    try:
        page = context.new_page()
        # listen from the start, as the page fixture does: turning file-chooser interception on
        # inside expect_file_chooser races with the click that opens the dialog
        page.on("filechooser", lambda chooser: None)
        page.goto(fresh_server.url + "/")
        page.wait_for_function("() => document.body.dataset.ready === 'true'")
        tabs = page.evaluate("document.querySelectorAll('#tabs .tab').length")
        with page.expect_file_chooser() as chooser:
            page.click("#menu-button")
            page.click(".menu-item:has-text('Open')")
        chooser.value.set_files(str(EXAMPLES / "edit_image_shapes.json"))
        page.wait_for_function(f"() => document.querySelectorAll('#tabs .tab').length === {tabs + 1}")
        by_type = {n["type"]: n for n in state(page)["nodes"]}
        assert {"CheckpointLoaderSimple", "LoadImage", "EditImage", "SaveImage"} <= set(by_type)
        loader = by_type["LoadImage"]["id"]
        picture = (EXAMPLES / "shapes_red_circle.png").read_bytes()
        rect = page.evaluate(f"window.weft.widgetClientRect({loader}, 'image:upload')")
        with page.expect_file_chooser() as chooser:
            page.mouse.click(rect["left"] + rect["width"] / 2, rect["top"] + rect["height"] / 2)
        chooser.value.set_files(files=[{"name": "shapes_red_circle.png", "mimeType": "image/png", "buffer": picture}])
        page.wait_for_function(
            f"() => window.weft.state.nodes.find(n => n.id === {loader}).widgets_values.image === 'shapes_red_circle.png'"
        )
        source = judge.judge(np.asarray(Image.open(io.BytesIO(picture)).convert("RGB"))).words()
        page.keyboard.press("Control+Enter")
        images = wait_output(page, by_type["SaveImage"]["id"], "images", timeout=240000)
        url = f"{fresh_server.url}/view?filename={images[0]['filename']}&subfolder={images[0]['subfolder']}&type=output"
        with urllib.request.urlopen(url) as response:
            edited = judge.judge(np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))).words()
        assert source["colour"] == "red" and edited["colour"] == "blue", (source, edited)
        for kept in ("position", "size", "background"):
            assert edited[kept] == source[kept], (source, edited)
        page.screenshot(path=str(screenshots / "edit-example.png"))
    finally:
        context.close()
