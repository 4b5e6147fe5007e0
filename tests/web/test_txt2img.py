"""The default workflow does what a ComfyUI user expects on first open: txt2img with the
first checkpoint, queued as it is, the image on SaveImage. Runs with the tiny models once
the diffusion nodes are installed (skipped before)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.web.helpers import set_text_widget, state, wait_output


@pytest.fixture(scope="module")
def diffusion_server(tmp_path_factory):
    import weft_tools.tiny_models as tiny
    from tests.support.server import start_server

    prebuilt = os.environ.get("WEFT_TINY_MODELS")
    if prebuilt and (Path(prebuilt) / "checkpoints").is_dir():
        models = Path(prebuilt)
    else:
        models = tmp_path_factory.mktemp("tiny-models")
        tiny.build_all(models)
    base = tmp_path_factory.mktemp("weft-txt2img")
    (base / "models").symlink_to(models, target_is_directory=True)
    live = start_server(base)
    try:
        yield live
    finally:
        live.stop()


def test_default_txt2img_workflow_runs(browser, diffusion_server, screenshots):
    context = browser.new_context(viewport={"width": 1500, "height": 860})
    try:
        page = context.new_page()
        page.goto(diffusion_server.url + "/")
        page.wait_for_function("() => document.body.dataset.ready === 'true'")
        g = state(page)
        by_type = {}
        for n in g["nodes"]:
            by_type.setdefault(n["type"], []).append(n)
        ckpts = page.evaluate(
            "window.weft.defs.CheckpointLoaderSimple.inputs.find(i => i.name === 'ckpt_name').choices"
        )
        assert by_type["CheckpointLoaderSimple"][0]["widgets_values"]["ckpt_name"] == ckpts[0]
        assert len(by_type["CLIPTextEncode"]) == 2 and len(g["links"]) == 9
        sampler = by_type["KSampler"][0]["id"]
        latent = by_type["EmptyLatentImage"][0]["id"]
        save = by_type["SaveImage"][0]["id"]
        # keep it quick with the tiny model: small image, few steps
        set_text_widget(page, latent, "width", "64")
        set_text_widget(page, latent, "height", "64")
        set_text_widget(page, sampler, "steps", "3")
        page.keyboard.press("Control+Enter")
        images = wait_output(page, save, "images", timeout=180000)
        assert images[0]["filename"].endswith(".png")
        # the sampler reported its steps and sent live previews while it ran
        seen = page.evaluate("({p: window.weft.runtime.previewCount || 0, g: window.weft.runtime.progressCount || 0})")
        assert seen["g"] >= 3 and seen["p"] >= 1, seen
        page.wait_for_function(
            "() => [...window.weft.renderer.images.values()].some(i => i.complete && i.naturalWidth === 64)"
        )
        page.keyboard.press(".")
        page.wait_for_timeout(300)  # let the progress bar's fade finish, for the screenshot
        page.screenshot(path=str(screenshots / "txt2img.png"))
    finally:
        context.close()
