"""A fresh install: `python main.py`, open the page, Queue, and the built-in model draws what the
default prompt asks for. No model files besides the ones that ship with Weft."""

from __future__ import annotations

import io
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.web.helpers import state, wait_output
from weft_tools.shapes import judge


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    from tests.support.server import serve_restoring_paths

    yield from serve_restoring_paths(tmp_path_factory.mktemp("weft-fresh"))


def test_default_workflow_on_a_fresh_install_draws_its_prompt(browser, fresh_server, screenshots):
    context = browser.new_context(viewport={"width": 1500, "height": 860})
    try:
        page = context.new_page()
        page.goto(fresh_server.url + "/")
        page.wait_for_function("() => document.body.dataset.ready === 'true'")
        by_type = {}
        for n in state(page)["nodes"]:
            by_type.setdefault(n["type"], []).append(n)
        assert by_type["CheckpointLoaderSimple"][0]["widgets_values"]["ckpt_name"] == "weft-shapes.safetensors"
        latent = by_type["EmptyLatentImage"][0]["widgets_values"]
        assert (latent["width"], latent["height"]) == (64, 64)
        prompts = sorted(n["widgets_values"]["text"] for n in by_type["CLIPTextEncode"])
        assert prompts == ["", "a large red circle in the centre, blue background"]
        page.keyboard.press("Control+Enter")  # Queue, as a user does first
        images = wait_output(page, by_type["SaveImage"][0]["id"], "images", timeout=120000)
        url = f"{fresh_server.url}/view?filename={images[0]['filename']}&subfolder={images[0]['subfolder']}&type=output"
        with urllib.request.urlopen(url) as response:
            picture = np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))
        assert picture.shape == (64, 64, 3)
        seen = judge.judge(picture).words()
        assert seen["colour"] == "red" and seen["background"] == "blue", seen
        page.wait_for_function(
            "() => [...window.weft.renderer.images.values()].some(i => i.complete && i.naturalWidth === 64)"
        )
        page.screenshot(path=str(screenshots / "fresh-install.png"))
    finally:
        context.close()
