"""Web extensions: served by the real server, imported and run in headless Chromium.

The page is a minimal host page served at the server's origin (so module imports resolve
against the real server): it installs the extension host from /weft/extension-host.js,
loads every script listed by /extensions and drives the hooks the canvas will call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import LiveServer, serve

from .conftest import PACKS

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")

HOST_PAGE = """<!doctype html>
<html><body><div id="widgets"></div>
<script type="module">
import { installExtensionHost } from "/weft/extension-host.js";
const notes = [];
const app = { toast: (message) => notes.push(message) };
const host = installExtensionHost(app);
await host.loadAll();
await host.setup();
const swatch = { id: 5, type: "ExampleColorSwatch" };
host.nodeCreated(swatch);
host.nodeCreated({ id: 6, type: "ShowText" });
const factory = host.widgetFor("STRING", { widget: "EXAMPLE_COLOR", default: "#ff8800" });
const widget = factory(swatch, "color", { default: "#ff8800" });
document.getElementById("widgets").append(widget.element);
const initial = widget.getValue();
widget.setValue("#112233");
const menu = host.menuItems();
menu.find((item) => item.label === "Example pack: count colour swatches").run();
host.emit("executed", { node: "5", output: { text: ["4 words"] } });
host.emit("executing", { node: "5", prompt_id: "p" });
window.result = {
  loaded: [...host.loaded].sort(),
  errors: host.errors,
  notes,
  initial,
  value: widget.getValue(),
  ready: window.weft.exampleReady === true,
  classic: window.__classicPackLoaded === true,
  menu: menu.map((item) => [item.extension, item.label]),
  noWidget: host.widgetFor("IMAGE", {}) === null,
  comfyStyle: window.__comfyStyle,
};
</script></body></html>"""


@pytest.fixture
def plugin_server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve(tmp_path, load_plugins=True, extra_custom_node_dirs=[PACKS])


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def test_web_extension_is_served_and_runs_in_the_browser(plugin_server: LiveServer, browser):
    page = browser.new_page()
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.route(
        f"{plugin_server.url}/__plugin_host__.html",
        lambda route: route.fulfill(status=200, content_type="text/html", body=HOST_PAGE),
    )
    page.goto(f"{plugin_server.url}/__plugin_host__.html")
    page.wait_for_function("window.result !== undefined", timeout=15000)
    result = page.evaluate("window.result")
    assert result["loaded"] == [
        "/extensions/classic_pack/classic.js",
        "/extensions/classic_pack/comfy_style.js",
        "/extensions/example_pack/example.js",
    ]
    assert [e["extension"] for e in result["errors"]] == ["/extensions/classic_pack/broken.js"]
    assert "broken on purpose" in result["errors"][0]["message"]
    assert result["ready"] and result["classic"]
    assert result["initial"] == "#ff8800" and result["value"] == "#112233"
    assert result["menu"] == [["example_pack.color", "Example pack: count colour swatches"]]
    assert result["notes"] == ["1 colour swatch node(s) in the graph", "node 5: 4 words"]
    assert result["noWidget"]
    # a ComfyUI-style extension (app.registerExtension, api.fetchApi, api.addEventListener) ran too
    assert result["comfyStyle"] == {
        "setup": True,
        "packs": 10 + 1,
        "events": ["5"],
        "created": ["ExampleColorSwatch", "ShowText"],
    }
    # the colour picker really is in the page, styled by the pack's CSS file
    picker = page.locator("input.example-color[type=color]")
    assert picker.count() == 1
    page.wait_for_function(
        "getComputedStyle(document.querySelector('input.example-color')).borderTopWidth === '2px'", timeout=10000
    )
    assert any("broken on purpose" in text for text in console_errors)
    page.close()
