"""Live previews are the canvas's own request: the server sends preview frames only to clients
that ask (ComfyUI's default), so the canvas asks for them in every POST /prompt."""

from __future__ import annotations

import json

from tests.web.helpers import set_text_widget, wait_output
from tests.web.test_images import build_image_graph


def test_the_canvas_asks_for_previews_when_it_queues(page):
    src, save = build_image_graph(page)
    set_text_widget(page, src, "width", "88")  # a prompt of its own: the output cache must not serve it
    bodies: list[dict] = []
    page.on(
        "request",
        lambda r: (
            r.method == "POST" and r.url.endswith("/api/prompt") and bodies.append(json.loads(r.post_data or "{}"))
        ),
    )
    page.click("#queue-button")
    wait_output(page, save, "images")
    assert len(bodies) == 1
    extra = bodies[0]["extra_data"]
    assert extra["preview_method"] == "auto" and "workflow" in extra["extra_pnginfo"]
