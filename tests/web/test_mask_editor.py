"""The mask editor of LoadImage, end to end: paint and erase with the mouse, save (the picture
with the mask in its alpha, through /upload/mask, as input/clipspace/clipspace-mask-<n>.png),
run LoadImage -> MASK -> MaskToImage -> SaveImage and read the mask's pixels where painted and
where not; reopen it (the saved mask comes back), invert, clear; Escape leaves the node as it
was. A server of its own per test: the input folder is the server's."""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image

from tests.web import own_server
from tests.web.helpers import add_node, canvas_point, new_tab, node, title, wait_output, wire

web_server = own_server.web_server
context = own_server.context

W, H = 160, 120


def picture() -> Image.Image:
    """Red on the left half, blue on the right, a green band across: easy to check after the round trip."""
    pixels = np.zeros((H, W, 3), dtype=np.uint8)
    pixels[:, : W // 2] = (220, 30, 30)
    pixels[:, W // 2 :] = (30, 30, 220)
    pixels[50:70, :] = (30, 200, 30)
    return Image.fromarray(pixels)


def upload_picture(page, loader: int) -> None:
    buffer = io.BytesIO()
    picture().save(buffer, format="PNG")
    rect = page.evaluate(f"window.weft.widgetClientRect({loader}, 'image:upload')")
    with page.expect_file_chooser() as chooser:
        page.mouse.click(rect["left"] + rect["width"] / 2, rect["top"] + rect["height"] / 2)
    chooser.value.set_files(files=[{"name": "scene.png", "mimeType": "image/png", "buffer": buffer.getvalue()}])
    page.wait_for_function(
        f"() => window.weft.state.nodes.find(n => n.id === {loader}).widgets_values.image === 'scene.png'"
    )


def at(page, x: float, y: float) -> tuple[float, float]:
    """The page point over image pixel (x, y) in the mask editor."""
    box = page.locator("#mask-editor .me-mask").bounding_box()
    return box["x"] + (x + 0.5) * box["width"] / W, box["y"] + (y + 0.5) * box["height"] / H


def stroke(page, points: list[tuple[float, float]], button: str = "left") -> None:
    page.mouse.move(*at(page, *points[0]))
    page.mouse.down(button=button)
    for p in points[1:]:
        page.mouse.move(*at(page, *p), steps=12)
    page.mouse.up(button=button)


def run_mask(page, server, save: int, runs_before: int) -> np.ndarray:
    """Queue the graph; the saved MaskToImage picture's first channel (0..255)."""
    page.locator("#canvas").focus()
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        f"() => window.weft.runtime.outputs[{save}] && window.weft.runtime.outputs[{save}].images[0].filename.includes('{runs_before + 1:05d}')"
    )
    (image,) = wait_output(page, save, "images")
    path = server.base_dir / "output" / image["subfolder"] / image["filename"]
    return np.asarray(Image.open(path).convert("RGB"))[:, :, 0]


def saved_value(page, loader: int, previous: str) -> str:
    page.wait_for_function(
        f"() => window.weft.state.nodes.find(n => n.id === {loader}).widgets_values.image !== {previous!r}"
    )
    value = node(page, loader)["widgets_values"]["image"]
    assert re.fullmatch(r"clipspace/clipspace-mask-\d+\.png", value), value
    return value


def test_paint_save_and_run_the_mask(page, web_server, screenshots):
    new_tab(page)
    loader = add_node(page, "LoadImage", canvas_point(page, 0.05, 0.15), expect_type="LoadImage")
    upload_picture(page, loader)
    to_image = add_node(page, "MaskToImage", canvas_point(page, 0.33, 0.15), expect_type="MaskToImage")
    save = add_node(page, "SaveImage", canvas_point(page, 0.55, 0.15), expect_type="SaveImage")
    wire(page, loader, 1, to_image, 0)  # MASK
    wire(page, to_image, 0, save, 0)
    page.wait_for_function("() => window.weft.state.links.length === 2")

    # the node's menu opens the editor on its picture
    page.mouse.click(*title(page, loader), button="right")
    page.click(".menu-item:has-text('Open in mask editor')")
    editor = page.locator("#mask-editor")
    editor.wait_for()
    # a hard brush (hardness slider to the end with the keyboard), 32 px
    editor.locator(".me-hardness input").click()
    page.keyboard.press("End")
    assert editor.locator(".me-hardness .me-value").inner_text() == "100%"
    assert editor.locator(".me-size .me-value").inner_text() == "32 px"
    editor.focus()
    # paint a horizontal stroke at y = 60 from x = 30 to 80, then erase across x = 70
    stroke(page, [(30, 60), (80, 60)])
    page.keyboard.press("e")
    assert editor.get_attribute("data-mode") == "erase"
    stroke(page, [(70, 30), (70, 90)])
    page.keyboard.press("b")
    editor.screenshot(path=str(screenshots / "mask-editor.png"))
    editor.locator(".me-save").click()
    editor.wait_for(state="detached")
    value = saved_value(page, loader, "scene.png")

    # the clipspace copy: the picture's colours, the mask as its alpha (masked = transparent)
    copy = np.asarray(Image.open(web_server.base_dir / "input" / value))
    assert copy.shape == (H, W, 4)
    assert (copy[:, :, :3] == np.asarray(picture())).all()
    assert copy[60, 40, 3] == 0 and copy[60, 70, 3] == 255 and copy[20, 120, 3] == 255

    # LoadImage's MASK is what was painted: 1 under the stroke, 0 where erased and elsewhere
    mask = run_mask(page, web_server, save, 0)
    assert mask.shape == (H, W)
    for x, y in ((35, 60), (45, 60), (45, 52), (50, 68), (91, 60)):
        assert mask[y, x] == 255, (x, y)
    for x, y in ((62, 60), (70, 60), (78, 60), (100, 60), (120, 20), (5, 60), (45, 40), (45, 80)):
        assert mask[y, x] == 0, (x, y)
    assert 800 < (mask > 127).sum() < 2400

    # a click on the node's picture: the viewer, whose "Edit mask" reopens the editor with the saved mask
    lay = page.evaluate(
        f"""() => {{ const w = window.weft, n = w.state.nodes.find(n => n.id === {loader});
        const i = w.renderer.layout(n).image; const [sx, sy] = w.renderer.toScreen(n.pos[0] + i.x + i.w / 2, n.pos[1] + i.y + i.h / 2);
        const r = w.renderer.canvas.getBoundingClientRect(); return [r.left + sx, r.top + sy]; }}"""
    )
    page.mouse.click(*lay)
    page.locator("#image-viewer .iv-mask").click()
    editor.wait_for()
    # the masked part shows the picture's own colours (not the black a canvas would read back)
    shown = page.evaluate(
        "() => [...document.querySelector('#mask-editor .me-image').getContext('2d').getImageData(40, 60, 1, 1).data]"
    )
    assert shown == [30, 200, 30, 255]
    alpha = page.evaluate(
        "() => document.querySelector('#mask-editor .me-mask').getContext('2d').getImageData(40, 60, 1, 1).data[3]"
    )
    assert alpha == 255
    page.keyboard.press("i")  # invert
    editor.locator(".me-save").click()
    editor.wait_for(state="detached")
    value = saved_value(page, loader, value)
    inverted = run_mask(page, web_server, save, 1)
    assert inverted[60, 40] == 0 and inverted[60, 70] == 255 and inverted[20, 120] == 255

    # Escape leaves the node as it was; Clear then Save gives an empty mask
    page.mouse.click(*title(page, loader), button="right")
    page.click(".menu-item:has-text('Open in mask editor')")
    editor.wait_for()
    stroke(page, [(10, 10), (150, 110)])
    page.keyboard.press("Escape")
    editor.wait_for(state="detached")
    assert node(page, loader)["widgets_values"]["image"] == value
    page.mouse.click(*title(page, loader), button="right")
    page.click(".menu-item:has-text('Open in mask editor')")
    editor.wait_for()
    editor.locator(".me-clear").click()
    editor.locator(".me-save").click()
    editor.wait_for(state="detached")
    saved_value(page, loader, value)
    assert run_mask(page, web_server, save, 2).max() == 0
