"""IMAGE operations (ComfyUI names and semantics): empty images, padding for outpainting,
compositing, cropping, batches, blending, blur/sharpen, colour quantization and stitching.

Sources: ComfyUI's ``nodes.py`` (EmptyImage, ImagePadForOutpaint) and ``comfy_extras``
(nodes_mask, nodes_images, nodes_post_processing). IMAGE is ``[B, H, W, C]`` float in 0..1
on the CPU; every node returns new tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import estimates as est
from .api import Boolean, Combo, Estimate, Float, Input, Int, Node, Output
from .tensors import (
    MAX_RESOLUTION,
    composite,
    filter_nchw,
    gaussian_kernel,
    image_input,
    mask_input,
    resize_to,
)

if TYPE_CHECKING:
    import torch


class EmptyImage(Node):
    category = "image"
    description = "A batch of images filled with one colour (0xRRGGBB)."
    inputs = (
        Int("width", 512, min=1, max=MAX_RESOLUTION, step=1),
        Int("height", 512, min=1, max=MAX_RESOLUTION, step=1),
        Int("batch_size", 1, min=1, max=4096),
        Int("color", 0, min=0, max=0xFFFFFF, step=1, display="color"),
    )
    outputs = (Output("IMAGE"),)

    @classmethod
    def estimate(cls, width: int = 512, height: int = 512, batch_size: int = 1) -> Estimate:
        shape = (batch_size, height, width, 3)
        return est.new_tensor(shape, est.batch_driver(batch_size), est.describe("image", shape))

    def run(self, width: int, height: int, batch_size: int = 1, color: int = 0) -> tuple:
        import torch

        rgb = torch.tensor([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF], dtype=torch.float32) / 255.0
        return (rgb.view(1, 1, 1, 3).expand(batch_size, height, width, 3).clone(),)


def outpaint_mask(
    height: int, width: int, left: int, top: int, right: int, bottom: int, feathering: int
) -> torch.Tensor:
    """The mask of the original area for outpainting: 0 inside, fading in (quadratically) over
    ``feathering`` pixels next to each padded side; the padding itself is added as 1 by the caller."""
    import torch

    inside = torch.zeros((height, width), dtype=torch.float32)
    if not (feathering > 0 and feathering * 2 < height and feathering * 2 < width):
        return inside
    rows = torch.arange(height, dtype=torch.float32).view(-1, 1)
    cols = torch.arange(width, dtype=torch.float32).view(1, -1)
    far_h, far_w = torch.full_like(rows, height), torch.full_like(cols, width)
    # distance to each padded edge; an edge that is not padded counts as far away
    distances = [
        rows if top else far_h,
        (height - rows) if bottom else far_h,
        cols if left else far_w,
        (width - cols) if right else far_w,
    ]
    d = torch.minimum(torch.minimum(distances[0], distances[1]), torch.minimum(distances[2], distances[3]))
    v = (feathering - d) / feathering
    return torch.where(d < feathering, v * v, inside)


class ImagePadForOutpaint(Node):
    display_name = "Pad Image for Outpainting"
    category = "image"
    description = (
        "Adds grey borders for outpainting, with the MASK of what to paint: the borders, fading "
        "into the original over feathering pixels."
    )
    inputs = (
        Input("image", "IMAGE"),
        Int("left", 0, min=0, max=MAX_RESOLUTION, step=8),
        Int("top", 0, min=0, max=MAX_RESOLUTION, step=8),
        Int("right", 0, min=0, max=MAX_RESOLUTION, step=8),
        Int("bottom", 0, min=0, max=MAX_RESOLUTION, step=8),
        Int("feathering", 40, min=0, max=MAX_RESOLUTION, step=1),
    )
    outputs = (Output("IMAGE"), Output("MASK"))

    @classmethod
    def estimate(
        cls, image: Any = None, left: int = 0, top: int = 0, right: int = 0, bottom: int = 0
    ) -> Estimate | None:
        info = est.tensor(image, 4)
        if info is None:
            return None
        b, h, w, c = info.shape
        shape = (b, h + top + bottom, w + left + right, c)
        mask = est.TensorInfo((1, shape[1], shape[2]))
        padded = est.new_tensor(shape, "left", est.describe("image", shape))
        return est.Estimate(padded.bytes + mask.nbytes, (padded.outputs[0], mask), "left", padded.what)

    def run(self, image: Any, left: int, top: int, right: int, bottom: int, feathering: int) -> tuple:
        import torch

        image = image_input("image", image)
        batch, height, width, channels = image.shape
        padded = torch.full((batch, height + top + bottom, width + left + right, channels), 0.5, dtype=torch.float32)
        padded[:, top : top + height, left : left + width, :] = image
        mask = torch.ones((height + top + bottom, width + left + right), dtype=torch.float32)
        mask[top : top + height, left : left + width] = outpaint_mask(
            height, width, left, top, right, bottom, feathering
        )
        return padded, mask.unsqueeze(0)


def _match_channels(destination: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The output keeps the destination's channels: a source alpha the destination lacks is
    dropped, and an RGB source on an RGBA destination counts as opaque. (ComfyUI pads the
    destination instead in that second case, which then fails on the channel mismatch.)"""
    import torch.nn.functional as F

    if destination.shape[-1] < source.shape[-1]:
        source = source[..., : destination.shape[-1]]
    elif destination.shape[-1] > source.shape[-1]:
        source = F.pad(source, (0, destination.shape[-1] - source.shape[-1]), value=1.0)
    return destination, source


class ImageCompositeMasked(Node):
    category = "image"
    description = "Pastes source onto destination at x, y, weighted by the optional mask (resized to the source)."
    inputs = (
        Input("destination", "IMAGE"),
        Input("source", "IMAGE"),
        Int("x", 0, min=0, max=MAX_RESOLUTION, step=1),
        Int("y", 0, min=0, max=MAX_RESOLUTION, step=1),
        Boolean("resize_source", False),
        Input("mask", "MASK", optional=True),
    )
    outputs = (Output("IMAGE"),)

    def run(self, destination: Any, source: Any, x: int, y: int, resize_source: bool, mask: Any = None) -> tuple:
        destination, source = _match_channels(image_input("destination", destination), image_input("source", source))
        m = mask_input("mask", mask) if mask is not None else None
        out = composite(destination.movedim(-1, 1), source.movedim(-1, 1), x, y, m, 1, resize_source)
        return (out.movedim(1, -1),)


class ImageCrop(Node):
    display_name = "Image Crop"
    category = "image/transform"
    description = "Cuts a rectangle out of the images (an x or y past the edge moves to the last pixel)."
    inputs = (
        Input("image", "IMAGE"),
        Int("width", 512, min=1, max=MAX_RESOLUTION, step=1),
        Int("height", 512, min=1, max=MAX_RESOLUTION, step=1),
        Int("x", 0, min=0, max=MAX_RESOLUTION, step=1),
        Int("y", 0, min=0, max=MAX_RESOLUTION, step=1),
    )
    outputs = (Output("IMAGE"),)

    @classmethod
    def estimate(cls, image: Any = None, width: int = 512, height: int = 512) -> Estimate | None:
        info = est.tensor(image, 4)
        if info is None:
            return None
        b, h, w, c = info.shape
        shape = (b, min(height, h), min(width, w), c)
        return est.new_tensor(shape, "width", est.describe("image", shape))

    def run(self, image: Any, width: int, height: int, x: int, y: int) -> tuple:
        image = image_input("image", image)
        x, y = min(x, image.shape[2] - 1), min(y, image.shape[1] - 1)
        return (image[:, y : y + height, x : x + width, :].clone(),)


class RepeatImageBatch(Node):
    category = "image/batch"
    description = "Repeats the whole image batch amount times."
    inputs = (Input("image", "IMAGE"), Int("amount", 1, min=1, max=4096))
    outputs = (Output("IMAGE"),)

    @classmethod
    def estimate(cls, image: Any = None, amount: int = 1) -> Estimate | None:
        info = est.tensor(image, 4)
        if info is None:
            return None
        shape = (info.shape[0] * amount, *info.shape[1:])
        return est.new_tensor(shape, "amount", est.describe("image", shape))

    def run(self, image: Any, amount: int) -> tuple:
        return (image_input("image", image).repeat(amount, 1, 1, 1),)


class ImageFromBatch(Node):
    category = "image/batch"
    description = "Takes length images starting at batch_index (clamped to the batch) out of a batch."
    inputs = (Input("image", "IMAGE"), Int("batch_index", 0, min=0, max=4095), Int("length", 1, min=1, max=4096))
    outputs = (Output("IMAGE"),)

    @classmethod
    def estimate(cls, image: Any = None, batch_index: int = 0, length: int = 1) -> Estimate | None:
        info = est.tensor(image, 4)
        if info is None:
            return None
        start = max(0, min(info.shape[0] - 1, batch_index))
        shape = (max(0, min(info.shape[0] - start, length)), *info.shape[1:])
        return est.new_tensor(shape, "length", est.describe("image", shape))

    def run(self, image: Any, batch_index: int, length: int) -> tuple:
        image = image_input("image", image)
        start = min(image.shape[0] - 1, batch_index)
        length = min(image.shape[0] - start, length)
        return (image[start : start + length].clone(),)


BLEND_MODES = ["normal", "multiply", "screen", "overlay", "soft_light", "difference"]


def blend_images(base: torch.Tensor, layer: torch.Tensor, mode: str) -> torch.Tensor:
    """``layer`` blended onto ``base`` by ``mode`` (the usual compositing formulas)."""
    import torch

    if mode == "normal":
        return layer
    if mode == "multiply":
        return base * layer
    if mode == "screen":
        return 1 - (1 - base) * (1 - layer)
    if mode == "overlay":
        return torch.where(base <= 0.5, 2 * base * layer, 1 - 2 * (1 - base) * (1 - layer))
    if mode == "soft_light":
        # W3C soft-light: D(b) is a cubic below 1/4 and the square root above
        d = torch.where(base <= 0.25, ((16 * base - 12) * base + 4) * base, torch.sqrt(base))
        return torch.where(
            layer <= 0.5, base - (1 - 2 * layer) * base * (1 - base), base + (2 * layer - 1) * (d - base)
        )
    if mode == "difference":
        return base - layer
    raise ValueError(f"input 'blend_mode': unknown mode {mode!r}; one of {', '.join(BLEND_MODES)}")


class ImageBlend(Node):
    display_name = "Image Blend"
    category = "image/postprocessing"
    description = (
        "Blends image2 onto image1 with a blend mode, mixed in by blend_factor (image2 is resized "
        "to image1 when they differ); clamped to 0..1."
    )
    inputs = (
        Input("image1", "IMAGE"),
        Input("image2", "IMAGE"),
        Float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01),
        Combo("blend_mode", BLEND_MODES),
    )
    outputs = (Output("IMAGE"),)

    def run(self, image1: Any, image2: Any, blend_factor: float, blend_mode: str) -> tuple:
        image1, image2 = _match_channels(image_input("image1", image1), image_input("image2", image2))
        if image1.shape != image2.shape:
            image2 = resize_to(image2.movedim(-1, 1), image1.shape[2], image1.shape[1], "bicubic", "center").movedim(
                1, -1
            )
        blended = blend_images(image1, image2, blend_mode)
        return ((image1 * (1 - blend_factor) + blended * blend_factor).clamp(0, 1),)


class ImageBlur(Node):
    display_name = "Image Blur"
    category = "image/postprocessing"
    description = "Gaussian blur over a (2r+1) square; sigma is relative to the radius, as in ComfyUI."
    inputs = (
        Input("image", "IMAGE"),
        Int("blur_radius", 1, min=1, max=31, step=1),
        Float("sigma", 1.0, min=0.1, max=10.0, step=0.1),
    )
    outputs = (Output("IMAGE"),)

    def run(self, image: Any, blur_radius: int, sigma: float) -> tuple:
        image = image_input("image", image)
        if blur_radius == 0:
            return (image,)
        kernel = gaussian_kernel(blur_radius * 2 + 1, sigma)
        return (filter_nchw(image.movedim(-1, 1), kernel, blur_radius).movedim(1, -1),)


class ImageSharpen(Node):
    display_name = "Image Sharpen"
    category = "image/postprocessing"
    description = "Unsharp masking: subtracts alpha x 10 times a Gaussian blur and adds it back at the centre."
    inputs = (
        Input("image", "IMAGE"),
        Int("sharpen_radius", 1, min=1, max=31, step=1),
        Float("sigma", 1.0, min=0.1, max=10.0, step=0.01),
        Float("alpha", 1.0, min=0.0, max=5.0, step=0.01),
    )
    outputs = (Output("IMAGE"),)

    def run(self, image: Any, sharpen_radius: int, sigma: float, alpha: float) -> tuple:
        image = image_input("image", image)
        if sharpen_radius == 0:
            return (image,)
        size = sharpen_radius * 2 + 1
        kernel = gaussian_kernel(size, sigma) * -(alpha * 10)
        centre = size // 2
        kernel[centre, centre] = kernel[centre, centre] - kernel.sum() + 1.0  # the kernel sums to 1
        return (filter_nchw(image.movedim(-1, 1), kernel, sharpen_radius).movedim(1, -1).clamp(0, 1),)


DITHERS = ["none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16"]


def bayer_matrix(order: int) -> Any:
    """The ``order`` x ``order`` ordered-dither threshold matrix, centred on 0 (values in -0.5..0.5)."""
    import numpy as np

    m = np.zeros((1, 1), dtype=np.float64)
    size = 1
    while size < order:
        q = (2 * size) ** 2
        m = np.block([[q * m - 1.5, q * m + 0.5], [q * m + 1.5, q * m - 0.5]]) / q
        size *= 2
    return m


def quantize_image(frame: Any, colors: int, dither: str) -> Any:
    """One RGB PIL image reduced to a palette of ``colors`` colours (median cut), dithered."""
    import numpy as np
    from PIL import Image

    palette = frame.quantize(colors=colors)
    if dither == "none":
        return frame.quantize(palette=palette, dither=Image.Dither.NONE)
    if dither == "floyd-steinberg":
        return frame.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    order = int(dither.split("-")[-1])
    spread = 2 * 256 / (len(palette.getpalette()) // 3)
    threshold = spread * bayer_matrix(order) + 0.5
    pixels = np.asarray(frame).astype(np.float32)
    reps = (-(-pixels.shape[0] // order), -(-pixels.shape[1] // order))
    tiled = np.tile(threshold, reps)[: pixels.shape[0], : pixels.shape[1], None]
    shifted = np.clip(pixels + tiled, 0, 255).astype(np.uint8)
    return Image.fromarray(shifted).quantize(palette=palette, dither=Image.Dither.NONE)


class ImageQuantize(Node):
    display_name = "Image Quantize"
    category = "image/postprocessing"
    description = "Reduces each image to a palette of colors colours, optionally dithered (Floyd-Steinberg or Bayer)."
    inputs = (
        Input("image", "IMAGE"),
        Int("colors", 256, min=1, max=256, step=1),
        Combo("dither", DITHERS),
    )
    outputs = (Output("IMAGE"),)

    def run(self, image: Any, colors: int, dither: str) -> tuple:
        import numpy as np
        import torch
        from PIL import Image

        image = image_input("image", image)
        out = torch.zeros_like(image[..., :3])
        for i, item in enumerate(image):
            # truncation to 8 bits, as ComfyUI does before quantizing
            frame = Image.fromarray((item[..., :3].clamp(0, 1) * 255).to(torch.uint8).numpy(), mode="RGB")
            reduced = quantize_image(frame, colors, dither).convert("RGB")
            out[i] = torch.from_numpy(np.asarray(reduced).astype(np.float32) / 255.0)
        return (out,)


SPACING_COLORS: dict[str, tuple[float, ...]] = {
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
}


def _pad_centered(image: torch.Tensor, dim: int, size: int, value: float) -> torch.Tensor:
    import torch.nn.functional as F

    missing = size - image.shape[dim]
    if missing <= 0:
        return image
    before, after = missing // 2, missing - missing // 2
    pad = (0, 0, 0, 0, before, after) if dim == 1 else (0, 0, before, after)
    return F.pad(image, pad, value=value)


class ImageStitch(Node):
    display_name = "Image Stitch"
    category = "image/transform"
    description = (
        "Stitches image2 to image1 in the specified direction.\nIf image2 is not provided, returns image1 "
        "unchanged.\nOptional spacing can be added between images."
    )
    inputs = (
        Input("image1", "IMAGE"),
        Combo("direction", ["right", "down", "left", "up"], default="right"),
        Boolean("match_image_size", True),
        Int("spacing_width", 0, min=0, max=1024, step=2),
        Combo("spacing_color", ["white", "black", "red", "green", "blue"], default="white"),
        Input("image2", "IMAGE", optional=True),
    )
    outputs = (Output("IMAGE"),)

    def run(
        self,
        image1: Any,
        direction: str,
        match_image_size: bool,
        spacing_width: int,
        spacing_color: str,
        image2: Any = None,
    ) -> tuple:
        import torch

        image1 = image_input("image1", image1)
        if image2 is None:
            return (image1,)
        image2 = image_input("image2", image2)
        horizontal = direction in ("left", "right")
        batch = max(image1.shape[0], image2.shape[0])
        # the shorter batch repeats its last image
        if image1.shape[0] < batch:
            image1 = torch.cat([image1, image1[-1:].repeat(batch - image1.shape[0], 1, 1, 1)])
        if image2.shape[0] < batch:
            image2 = torch.cat([image2, image2[-1:].repeat(batch - image2.shape[0], 1, 1, 1)])
        color = SPACING_COLORS[spacing_color]
        if match_image_size:
            h1, w1 = image1.shape[1:3]
            h2, w2 = image2.shape[1:3]
            if horizontal:
                size = (int(h1 * (w2 / h2)), h1)
            else:
                size = (w1, int(w1 / (w2 / h2)))
            image2 = resize_to(image2.movedim(-1, 1), size[0], size[1], "lanczos").movedim(1, -1)
        else:
            # pad the other side to the larger image, centred; grey-level spacing colours pad with
            # their value, coloured ones with black (ComfyUI's rule)
            pad_value = color[0] if len(set(color)) == 1 else 0.0
            dim = 1 if horizontal else 2
            size = max(image1.shape[dim], image2.shape[dim])
            image1, image2 = _pad_centered(image1, dim, size, pad_value), _pad_centered(image2, dim, size, pad_value)
        channels = max(image1.shape[-1], image2.shape[-1])
        image1, image2 = (
            torch.cat([im, torch.ones(*im.shape[:-1], channels - im.shape[-1])], dim=-1)
            if im.shape[-1] < channels
            else im
            for im in (image1, image2)
        )
        parts = [image2, image1] if direction in ("left", "up") else [image1, image2]
        if spacing_width > 0:
            spacing_width += spacing_width % 2
            if horizontal:
                shape = (batch, max(image1.shape[1], image2.shape[1]), spacing_width, channels)
            else:
                shape = (batch, spacing_width, max(image1.shape[2], image2.shape[2]), channels)
            spacer = torch.zeros(shape)
            spacer[..., : min(3, channels)] = torch.tensor(color[: min(3, channels)])
            if channels == 4:
                spacer[..., 3] = 1.0
            parts.insert(1, spacer)
        return (torch.cat(parts, dim=2 if horizontal else 1),)


NODES = [
    EmptyImage,
    ImagePadForOutpaint,
    ImageCompositeMasked,
    ImageCrop,
    RepeatImageBatch,
    ImageFromBatch,
    ImageBlend,
    ImageBlur,
    ImageSharpen,
    ImageQuantize,
    ImageStitch,
]
