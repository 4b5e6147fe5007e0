"""The image viewer: a click on a node's output image (or a history thumbnail) opens it full
size; wheel and buttons zoom, ←/→ step through the batch and on through the history, ↑/↓ jump
between runs; Download, Load workflow and Copy seed act on the image shown; Escape closes.
A server of its own per test: the history is the server's."""

from __future__ import annotations

from tests.web import own_server
from tests.web.helpers import add_node, canvas_point, new_tab, set_text_widget, state, wait_output, wire

web_server = own_server.web_server
context = own_server.context


def build_batch_graph(page) -> tuple[int, int, int]:
    """WebTestImage -> RepeatImageBatch (2) -> SaveImage, by mouse and keyboard."""
    new_tab(page)
    src = add_node(page, "WebTestImage", canvas_point(page, 0.08, 0.2), expect_type="WebTestImage")
    set_text_widget(page, src, "width", "96")
    set_text_widget(page, src, "steps", "1")
    rep = add_node(page, "RepeatImageBatch", canvas_point(page, 0.32, 0.2), expect_type="RepeatImageBatch")
    set_text_widget(page, rep, "amount", "2")
    save = add_node(page, "SaveImage", canvas_point(page, 0.55, 0.2), expect_type="SaveImage")
    wire(page, src, 0, rep, 0)
    wire(page, rep, 0, save, 0)
    page.wait_for_function("() => window.weft.state.links.length === 2")
    return src, rep, save


def image_cell(page, node_id: int, index: int, count: int) -> tuple[float, float]:
    """The centre of picture `index` of the grid a node draws its `count` pictures in."""
    return tuple(
        page.evaluate(
            """([id, index, count]) => {
                const w = window.weft, r = w.renderer;
                const node = w.state.nodes.find((n) => n.id === id);
                const img = r.layout(node).image;
                const cols = Math.ceil(Math.sqrt(count)), rows = Math.ceil(count / cols);
                const x = node.pos[0] + img.x + (index % cols + 0.5) * img.w / cols;
                const y = node.pos[1] + img.y + (Math.floor(index / cols) + 0.5) * img.h / rows;
                const [sx, sy] = r.toScreen(x, y);
                const rect = r.canvas.getBoundingClientRect();
                return [rect.left + sx, rect.top + sy];
            }""",
            [node_id, index, count],
        )
    )


def runs(server) -> list[tuple[str, dict]]:
    """The server's history, newest first."""
    status, history = server.get("/history")
    assert status == 200
    return list(reversed(history.items()))


def wait_runs(page, server, count: int) -> list[tuple[str, dict]]:
    """The server's history once it holds `count` finished runs, newest first."""
    for _ in range(300):
        history = runs(server)
        if len(history) == count and all(e.get("status", {}).get("completed") for _, e in history):
            return history
        page.wait_for_timeout(100)
    raise AssertionError(f"expected {count} finished runs, the history has {runs(server)}")


def shown(page) -> str:
    return page.locator("#image-viewer").get_attribute("data-filename")


def test_viewer_zoom_steps_and_actions(page, web_server, screenshots):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    src, _, save = build_batch_graph(page)
    queued = state(page)
    page.fill("#batch-count", "2")
    page.locator("#canvas").focus()
    page.keyboard.press("Control+Enter")  # two runs of two images each
    page.wait_for_function(
        f"() => window.weft.runtime.outputs[{save}] && window.weft.runtime.outputs[{save}].images.length === 2"
    )
    (new_id, new_entry), (old_id, old_entry) = wait_runs(page, web_server, 2)
    new_files = [im["filename"] for im in new_entry["outputs"][str(save)]["images"]]
    old_files = [im["filename"] for im in old_entry["outputs"][str(save)]["images"]]
    wait_output(page, save, "images")
    page.wait_for_function(
        f"() => window.weft.runtime.outputs[{save}].images[1].filename === {new_files[1]!r}", timeout=15000
    )

    # a click on the node's second picture opens it full size
    page.mouse.click(*image_cell(page, save, 1, 2))
    viewer = page.locator("#image-viewer")
    viewer.wait_for()
    page.wait_for_function(f"() => document.querySelector('#image-viewer').dataset.filename === {new_files[1]!r}")
    page.wait_for_function("() => document.querySelector('#image-viewer .iv-image').naturalWidth === 96")
    assert "image 2 of 2" in viewer.locator(".iv-pos").inner_text()
    fitted = float(viewer.get_attribute("data-scale"))
    assert fitted > 2  # 96 px fitted to the window

    # zoom: the wheel zooms at the pointer (the pixel under it stays put), buttons, 1:1 and fit
    stage = viewer.locator(".iv-stage").bounding_box()
    px, py = stage["x"] + stage["width"] * 0.4, stage["y"] + stage["height"] * 0.45
    before = page.evaluate(
        f"() => {{ const r = document.querySelector('#image-viewer .iv-image').getBoundingClientRect(); return [({px} - r.left) / r.width, ({py} - r.top) / r.height]; }}"
    )
    page.mouse.move(px, py)
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"() => parseFloat(document.querySelector('#image-viewer').dataset.scale) > {fitted * 1.5}")
    after = page.evaluate(
        f"() => {{ const r = document.querySelector('#image-viewer .iv-image').getBoundingClientRect(); return [({px} - r.left) / r.width, ({py} - r.top) / r.height]; }}"
    )
    assert abs(before[0] - after[0]) < 0.01 and abs(before[1] - after[1]) < 0.01, (before, after)
    viewer.locator(".iv-actual").click()
    assert float(viewer.get_attribute("data-scale")) == 1
    assert viewer.locator(".iv-zoom").inner_text() == "100%"
    viewer.locator(".iv-zoom-in").click()
    assert float(viewer.get_attribute("data-scale")) == 1.25
    page.keyboard.press("-")
    assert float(viewer.get_attribute("data-scale")) == 1
    viewer.locator(".iv-fit").click()
    assert abs(float(viewer.get_attribute("data-scale")) - fitted) < 1e-6
    page.screenshot(path=str(screenshots / "image-viewer.png"))

    # arrows: ← back through the batch; → past its end goes on to the older run; ↑/↓ jump runs
    page.keyboard.press("ArrowLeft")
    assert shown(page) == new_files[0]
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert shown(page) == old_files[0]
    assert f"run #{old_entry['prompt'][0]}" in viewer.locator(".iv-pos").inner_text()
    page.keyboard.press("ArrowUp")
    assert shown(page) == new_files[0]
    page.keyboard.press("ArrowDown")
    assert shown(page) == old_files[0]

    # copy seed: the seed the older run's sampler had (the seed widget changed between runs)
    old_seed = old_entry["prompt"][2][str(src)]["inputs"]["seed"]
    assert old_seed != new_entry["prompt"][2][str(src)]["inputs"]["seed"]
    page.wait_for_function(f"() => document.querySelector('#image-viewer .iv-seed').dataset.seed === '{old_seed}'")
    viewer.locator(".iv-seed").click()
    page.wait_for_selector(f".toast:has-text('Seed {old_seed} copied')")
    assert page.evaluate("navigator.clipboard.readText()") == str(old_seed)
    assert f"seed {old_seed} (WebTestImage #{src})" in viewer.locator(".iv-caption").inner_text()

    # download the image shown
    with page.expect_download() as download:
        viewer.locator(".iv-download").click()
    assert download.value.suggested_filename == old_files[0]

    # load the workflow of that run: a new tab with the queued graph and the run's images
    tabs = page.locator("#tabs .tab").count()
    viewer.locator(".iv-load").click()
    viewer.wait_for(state="detached")
    page.wait_for_function(f"() => document.querySelectorAll('#tabs .tab').length === {tabs + 1}")
    loaded = state(page)
    assert [(n["id"], n["type"]) for n in loaded["nodes"]] == [(n["id"], n["type"]) for n in queued["nodes"]]
    assert loaded["links"] == queued["links"]
    assert next(n for n in loaded["nodes"] if n["id"] == src)["widgets_values"]["seed"] == old_seed

    # a history thumbnail opens the viewer too; Escape closes it
    page.click("#queue-toggle")
    row = page.locator(f"#queue-panel .queue-item.history[data-prompt-id='{old_id}']")
    row.locator(".thumbs img").nth(1).click()
    viewer.wait_for()
    page.wait_for_function(f"() => document.querySelector('#image-viewer').dataset.filename === {old_files[1]!r}")
    page.keyboard.press("Escape")
    viewer.wait_for(state="detached")
    assert page.locator("#image-viewer").count() == 0
