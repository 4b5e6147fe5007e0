"""A cheap image source for the canvas tests.

``WebTestImage`` makes a small gradient IMAGE tensor, reporting progress and sending a
preview frame like a sampler, so image tests need no model; the real SaveImage and
LoadImage take it from there.
"""

from __future__ import annotations

import io
import time
from typing import Any

from nodes.api import Int, Node, Output


class WebTestImage(Node):
    category = "testing/image"
    description = "A small gradient image; steps like a sampler with progress and previews."
    inputs = (
        Int("width", 64, min=8, max=512, step=8),
        Int("height", 64, min=8, max=512, step=8),
        Int("seed", 0, min=0, max=2**32 - 1, control_after_generate=True),
        Int("steps", 3, min=1, max=50),
    )
    outputs = (Output("IMAGE"),)

    def run(self, width: int, height: int, seed: int, steps: int) -> Any:
        import numpy as np
        import torch
        from PIL import Image

        for step in range(steps):
            time.sleep(0.02)
            preview = Image.new("RGB", (16, 16), (40 * step % 255, 90, 200))
            buffer = io.BytesIO()
            preview.save(buffer, format="JPEG")
            self.ctx.preview(buffer.getvalue(), "JPEG")
            self.ctx.progress(step + 1, steps)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        r = xs / max(1, width - 1)
        g = ys / max(1, height - 1)
        b = np.full_like(r, (seed % 256) / 255.0)
        return torch.from_numpy(np.stack([r, g, b], axis=-1)[None])


WEB_TEST_NODES = [WebTestImage]
