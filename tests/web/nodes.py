"""Cheap image nodes for the canvas tests, used until (or unless) the diffusion nodes are installed.

``WebTestImage`` makes a small gradient IMAGE tensor, reporting progress and sending a
preview frame like a sampler; ``WebTestSaveImage`` writes it as a PNG with the prompt and
workflow in text chunks, exactly as SaveImage does, and shows it on the node.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

from nodes.api import Combo, Hidden, Input, Int, Node, Output, Result, String
from nodes.paths import get_paths


class WebTestImage(Node):
    category = "testing/image"
    description = "A small gradient image; steps like a sampler with progress and previews."
    inputs = (Int("width", 64, min=8, max=512, step=8), Int("height", 64, min=8, max=512, step=8),
              Int("seed", 0, min=0, max=2**32 - 1, control_after_generate=True),
              Int("steps", 3, min=1, max=50))
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


class WebTestSaveImage(Node):
    category = "testing/image"
    description = "Saves images to the output folder as PNG with the workflow embedded."
    inputs = (Input("images", "IMAGE"), String("filename_prefix", "weft"),
              Hidden("prompt", "PROMPT"), Hidden("extra_pnginfo", "EXTRA_PNGINFO"))
    outputs = ()
    output_node = True

    def run(self, images: Any, filename_prefix: str, prompt: Any = None, extra_pnginfo: Any = None) -> Result:
        import numpy as np
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        out_dir = get_paths().output
        out_dir.mkdir(parents=True, exist_ok=True)
        results = []
        for image in images:
            array = (np.clip(image.cpu().numpy(), 0, 1) * 255).astype(np.uint8)
            info = PngInfo()
            if prompt is not None:
                info.add_text("prompt", json.dumps(prompt))
            for key, value in (extra_pnginfo or {}).items():
                info.add_text(key, json.dumps(value))
            n = len(list(out_dir.glob(f"{filename_prefix}_*.png"))) + 1
            name = f"{filename_prefix}_{n:05d}_.png"
            Image.fromarray(array).save(out_dir / name, pnginfo=info)
            results.append({"filename": name, "subfolder": "", "type": "output"})
        return Result(ui={"images": results})


def _input_images() -> list[str]:
    folder = get_paths().input
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))


class WebTestLoadImage(Node):
    category = "testing/image"
    description = "Loads an image from the input folder (with an upload button on the node)."
    inputs = (Combo("image", _input_images, image_upload=True),)
    outputs = (Output("IMAGE"),)

    def run(self, image: str) -> Any:
        import numpy as np
        import torch
        from PIL import Image

        array = np.asarray(Image.open(get_paths().input / image).convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(array[None])


WEB_TEST_NODES = [WebTestImage, WebTestSaveImage, WebTestLoadImage]
