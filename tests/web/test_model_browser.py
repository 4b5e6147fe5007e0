"""The model browser on a server of its own (its model folders get files the other canvas tests
must not see): folders with their files, sizes and families, folding, the filter, and
dragging a file onto the canvas to add its loader."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_models import SD1_LORA, SDXL_CHECKPOINT, SDXL_LORA, write_safetensors
from tests.support.server import LiveServer, start_server
from tests.web.conftest import _open_canvas, web_registry
from tests.web.helpers import canvas_point, state


@pytest.fixture(scope="module")
def models_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    base = tmp_path_factory.mktemp("weft-models")
    models = base / "models"
    write_safetensors(models / "checkpoints" / "sdxl" / "juggernaut-xl.safetensors", SDXL_CHECKPOINT, payload=3 << 20)
    write_safetensors(models / "loras" / "detail-sd15.safetensors", SD1_LORA, payload=150_000)
    write_safetensors(models / "loras" / "pixel-art-xl.safetensors", SDXL_LORA)
    live = start_server(base, web_registry())
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def models_page(context, models_server, browser_thread):
    errors: list[str] = []
    page = browser_thread.call(_open_canvas, context, models_server.url, errors)
    yield page
    assert not errors, f"uncaught errors in the page: {errors}"


def files(page, folder: str) -> dict[str, str]:
    """name -> the row's text (badges and size), for one folder's rows."""
    return page.eval_on_selector_all(
        f"#model-browser .model-folder[data-folder='{folder}'] .model-file",
        "lis => Object.fromEntries(lis.map(li => [li.dataset.name, li.querySelector('.model-meta').innerText]))",
    )


def test_folders_sizes_families_filter_and_drag(models_page, models_server, screenshots):
    page = models_page
    lora_bytes = (models_server.base_dir / "models" / "loras" / "detail-sd15.safetensors").stat().st_size
    page.click("#tab-add")
    page.click("#models-toggle")
    page.wait_for_selector("#model-browser .model-folder[data-folder='checkpoints'] .model-file")
    folders = page.eval_on_selector_all("#model-browser .model-folder", "s => s.map(x => x.dataset.folder)")
    assert {"checkpoints", "loras", "vae", "controlnet", "text_encoders"} <= set(folders) and "configs" not in folders

    # checkpoints are unfolded: each file with its family and size, the built-in one marked
    ckpts = files(page, "checkpoints")
    assert ckpts["sdxl/juggernaut-xl.safetensors"].split() == ["SDXL", "3.00", "MB"]
    assert ckpts["weft-shapes.safetensors"].split()[:2] == ["SD1.x", "built-in"]
    assert ckpts["weft-shapes.safetensors"].endswith("MB")
    assert files(page, "loras") == {}  # folded
    count = page.locator("#model-browser .model-folder[data-folder='loras'] .lib-count").inner_text()
    assert count == "2"

    page.click("#model-browser .model-folder[data-folder='loras'] .folder-head")
    loras = files(page, "loras")
    assert loras["detail-sd15.safetensors"].split() == ["SD1.x", f"{lora_bytes / 1024:.1f}", "KB"]
    assert loras["pixel-art-xl.safetensors"].split()[0] == "SDXL"
    page.click("#model-browser .model-folder[data-folder='vae'] .folder-head")
    assert "No files" in page.inner_text("#model-browser .model-folder[data-folder='vae']")
    page.screenshot(path=str(screenshots / "model-browser.png"))

    # the filter looks through every folder, by name or family
    page.fill("#model-browser .model-filter", "xl")
    shown = page.eval_on_selector_all("#model-browser .model-folder", "s => s.map(x => x.dataset.folder)")
    assert shown == ["checkpoints", "loras"]
    assert list(files(page, "loras")) == ["pixel-art-xl.safetensors"]
    page.fill("#model-browser .model-filter", "sd1.x")
    assert list(files(page, "checkpoints")) == ["weft-shapes.safetensors"]
    page.fill("#model-browser .model-filter", "")

    # dragging a file onto the canvas adds the loader that takes it, with the file picked
    row = page.locator("#model-browser .model-file[data-name='sdxl/juggernaut-xl.safetensors']")
    box = row.bounding_box()
    drop = canvas_point(page, 0.6, 0.5)
    page.mouse.move(box["x"] + 40, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(*drop, steps=8)
    page.mouse.up()
    page.wait_for_function("() => window.weft.state.nodes.length === 1")
    (node,) = state(page)["nodes"]
    assert node["type"] == "CheckpointLoaderSimple"
    assert node["widgets_values"] == {"ckpt_name": "sdxl/juggernaut-xl.safetensors"}
    page.keyboard.press("Control+z")
    assert state(page)["nodes"] == []

    # a click adds a LoRA loader in the view; the library and the browser share the dock
    page.click("#model-browser .model-file[data-name='detail-sd15.safetensors']")
    page.wait_for_function("() => window.weft.state.nodes.length === 1")
    assert state(page)["nodes"][0]["type"] == "LoraLoader"
    assert state(page)["nodes"][0]["widgets_values"]["lora_name"] == "detail-sd15.safetensors"
    page.click("#library-toggle")
    assert page.locator("#model-browser").is_hidden() and page.locator("#node-library").is_visible()
    assert page.get_attribute("#models-toggle", "aria-pressed") == "false"
