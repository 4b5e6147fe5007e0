"""Images: a run shows its image on the output node (with live previews and progress while it
runs), a saved PNG dropped on the canvas brings its graph back, LoadImage uploads a file."""

from __future__ import annotations

import io

from PIL import Image

from tests.web.helpers import (
    add_node,
    canvas_point,
    drag,
    new_tab,
    node,
    set_text_widget,
    socket,
    state,
    title,
    wait_output,
)

SAVE = "SaveImage"
LOAD = "LoadImage"


def build_image_graph(page):
    new_tab(page)
    src = add_node(page, "WebTestImage", canvas_point(page, 0.1, 0.2), expect_type="WebTestImage")
    set_text_widget(page, src, "width", "96")
    set_text_widget(page, src, "steps", "4")
    # drag the IMAGE output into empty space: the menu offers only nodes that take an IMAGE
    drag(page, socket(page, src, "output", 0), canvas_point(page, 0.45, 0.25))
    page.wait_for_selector(".search-menu:not([hidden])")
    offered = page.locator(".search-results li").evaluate_all("els => els.map(e => e.dataset.type)")
    assert SAVE in offered and "StringConcatenate" not in offered
    page.keyboard.type(SAVE)
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.weft.state.links.length === 1")
    save = state(page)["links"][0]["target_id"]
    return src, save


def test_run_shows_image_on_output_node_and_png_restores_graph(page, screenshots):
    src, save = build_image_graph(page)
    queued_graph = state(page)
    page.click("#queue-button")
    images = wait_output(page, save, "images")
    assert images[0]["type"] == "output" and images[0]["filename"].endswith(".png")
    # the image is drawn on the node: the renderer loaded it from /api/view
    page.wait_for_function(
        "() => [...window.weft.renderer.images.values()].some(i => i.complete && i.naturalWidth === 96)"
    )
    rt = page.evaluate("({p: window.weft.runtime.previewCount || 0, g: window.weft.runtime.progressCount || 0})")
    assert rt["p"] >= 1 and rt["g"] >= 4, rt
    page.screenshot(path=str(screenshots / "image-output.png"))
    # the node's menu opens the full image
    page.mouse.click(*title(page, save), button="right")
    with page.context.expect_page() as popup:
        page.click(".menu-item:has-text('Open image')")
    popup.value.wait_for_load_state()
    assert "/api/view?filename=" in popup.value.url
    popup.value.close()
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+g")  # group the two nodes
    page.mouse.click(*canvas_point(page, 0.5, 0.95))
    page.click("#queue-toggle")
    page.wait_for_selector("#queue-panel .queue-item.history .thumbs img")
    page.screenshot(path=str(screenshots / "editor.png"))
    page.click("#queue-toggle")

    # the seed moved on after queueing ("control after generate": randomize)
    assert node(page, src)["widgets_values"]["seed"] != queued_graph["nodes"][0]["widgets_values"]["seed"]
    saved_graph = queued_graph
    # drop the saved PNG onto the canvas: its embedded workflow opens in a new tab
    url = page.evaluate(f"window.weft.api.viewUrl(window.weft.runtime.outputs[{save}].images[0])")
    chunks = page.evaluate(
        """async (url) => {
            const {readPngText} = await import("./js/serialize.js");
            const text = await readPngText(await (await fetch(url)).arrayBuffer());
            return {workflow: JSON.parse(text.workflow), weft: JSON.parse(text.weft_workflow), prompt: JSON.parse(text.prompt)};
        }""",
        url,
    )
    # ComfyUI's UI format for the ecosystem, Weft's own document for an exact round trip
    assert chunks["workflow"]["version"] == 0.4 and isinstance(chunks["workflow"]["links"][0], list)
    src_comfy = next(n for n in chunks["workflow"]["nodes"] if n["id"] == src)
    assert src_comfy["widgets_values"][:2] == [96, 64] and src_comfy["widgets_values"][3] == "randomize"
    assert chunks["weft"]["format"] == "weft-workflow"
    assert chunks["prompt"][str(src)]["inputs"]["width"] == 96
    tabs_before = page.locator("#tabs .tab").count()
    x, y = canvas_point(page, 0.6, 0.6)
    page.evaluate(
        """async ([url, x, y]) => {
            const blob = await (await fetch(url)).blob();
            const dt = new DataTransfer();
            dt.items.add(new File([blob], "weft_result.png", {type: "image/png"}));
            const canvas = document.getElementById("canvas");
            canvas.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, clientX: x, clientY: y}));
            canvas.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true, clientX: x, clientY: y}));
        }""",
        [url, x, y],
    )
    page.wait_for_function(f"() => document.querySelectorAll('#tabs .tab').length === {tabs_before + 1}")
    restored = state(page)
    assert [(n["id"], n["type"], n["widgets_values"]) for n in restored["nodes"]] == [
        (n["id"], n["type"], n["widgets_values"]) for n in saved_graph["nodes"]
    ]
    assert restored["links"] == saved_graph["links"]
    assert node(page, src)["widgets_values"]["width"] == 96
    page.screenshot(path=str(screenshots / "png-dropped.png"))


def test_load_image_upload_button(page, screenshots):
    new_tab(page)
    loader = add_node(page, LOAD, canvas_point(page, 0.2, 0.2), expect_type=LOAD)
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 90)).save(buffer, format="PNG")
    rect = page.evaluate(f"window.weft.widgetClientRect({loader}, 'image:upload')")
    with page.expect_file_chooser() as chooser:
        page.mouse.click(rect["left"] + rect["width"] / 2, rect["top"] + rect["height"] / 2)
    chooser.value.set_files(files=[{"name": "green.png", "mimeType": "image/png", "buffer": buffer.getvalue()}])
    page.wait_for_function("() => window.weft.state.nodes[0].widgets_values.image === 'green.png'")
    page.wait_for_function(
        "() => [...window.weft.renderer.images.values()].some(i => i.complete && i.naturalWidth === 40)"
    )
    assert "green.png" in page.evaluate(f"window.weft.defs.{LOAD}.inputs[0].choices")
    page.screenshot(path=str(screenshots / "load-image.png"))
    # and it runs: the uploaded picture goes through to a saved image
    save = add_node(page, SAVE, canvas_point(page, 0.6, 0.2), expect_type=SAVE)
    drag(page, socket(page, loader, "output", 0), title(page, save))
    page.keyboard.press("Control+Enter")
    (saved,) = wait_output(page, save, "images")
    page.wait_for_function(
        f"() => [...window.weft.renderer.images.entries()].some(([u, i]) => u.includes({saved['filename']!r}) && i.naturalWidth === 40)"
    )
