"""Saved pictures carry ComfyUI's 8-bit values: scale by 255 in float32, clip to 0..255, then
truncate (ComfyUI's SaveImage, PreviewImage and lanczos resize), so the same IMAGE gives a
byte-identical PNG here and in ComfyUI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import nodes.paths as paths_module
from nodes.diffusion import image as im


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Any]:
    with paths_module.using(paths_module.Paths.at(tmp_path)) as paths:
        yield paths


def comfyui_bytes(image: torch.Tensor) -> np.ndarray:
    """ComfyUI's conversion, restated: 255 * x in the image's float type, clipped, truncated."""
    scaled = image.numpy() * np.float32(255.0)
    return np.trunc(np.minimum(np.maximum(scaled, 0.0), 255.0)).astype(np.uint8)


def tricky_image() -> torch.Tensor:
    """Values where truncating and rounding disagree (k + 0.7 grey levels), exact levels k/255
    (whose float32 product may land just under k), and values outside 0..1."""
    levels = torch.arange(256, dtype=torch.float32)
    rows = [(levels + 0.7) / 255, levels / 255, (levels + 0.5) / 255, torch.linspace(-0.5, 1.5, 256)]
    rgb = torch.stack(rows)[:, :, None].repeat(1, 1, 3)
    rgb[..., 1] = rgb[..., 1].flip(-1)
    return rgb[None]  # [1, 4, 256, 3]


def test_pixels_are_truncated_not_rounded() -> None:
    image = tricky_image()
    got = im.to_uint8(image[0])
    assert got.dtype == np.uint8 and np.array_equal(got, comfyui_bytes(image[0]))
    assert got[0, 10, 0] == 10  # 10.7 grey levels: truncated, rounding would give 11
    assert got[3, 0, 0] == 0 and got[3, -1, 0] == 255
    assert not np.array_equal(got, image[0].clamp(0, 1).mul(255).round().byte().numpy())


def read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_save_image_writes_comfyuis_exact_png_bytes(home: Any, tmp_path: Path) -> None:
    image = tricky_image()
    prompt = {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}
    extra = {"workflow": {"nodes": [], "links": []}}
    result = im.SaveImage().run(image, "parity", prompt, extra)
    (entry,) = result.ui["images"]
    saved = home.output / entry["filename"]
    assert np.array_equal(read(saved), comfyui_bytes(image[0]))
    # the file ComfyUI's SaveImage writes for this IMAGE: same pixels, text chunks, compression
    info = PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    info.add_text("workflow", json.dumps(extra["workflow"]))
    reference = tmp_path / "comfyui.png"
    Image.fromarray(comfyui_bytes(image[0])).save(reference, pnginfo=info, compress_level=4)
    assert saved.read_bytes() == reference.read_bytes()


def test_preview_nodes_truncate_too(home: Any) -> None:
    from nodes.masks import MaskPreview

    image = tricky_image()
    (entry,) = im.PreviewImage().run(image).ui["images"]
    assert np.array_equal(read(home.temp / entry["filename"]), comfyui_bytes(image[0]))
    mask = image[..., 0]
    (entry,) = MaskPreview().run(mask).ui["images"]
    assert np.array_equal(read(home.temp / entry["filename"])[..., 0], comfyui_bytes(mask[0][..., None])[..., 0])


def test_lanczos_resize_truncates_before_resampling() -> None:
    image = tricky_image()
    (out,) = im.ImageScale().run(image, "lanczos", 128, 8, "disabled")
    resized = Image.fromarray(comfyui_bytes(image[0])).resize((128, 8), resample=Image.Resampling.LANCZOS)
    expected = torch.from_numpy(np.asarray(resized).astype(np.float32) / 255.0)
    assert torch.equal(out[0], expected)
