"""MASK nodes (ComfyUI's ``comfy_extras/nodes_mask.py`` names, inputs and semantics).

A MASK is ``[B, H, W]`` in 0..1 (1 = selected: repainted by inpainting, transparent in
LoadImage's alpha). These nodes make, convert, crop, combine, feather, grow and threshold
masks; they never modify their inputs. Written with torch ops only (ComfyUI uses scipy for
GrowMask; a 3x3 grey dilation is a max over the footprint, which torch does as well).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import estimates as est
from .api import Boolean, Combo, Estimate, Float, Hidden, Input, Int, Node, Output, Result
from .tensors import MAX_RESOLUTION, image_input, mask_input

if TYPE_CHECKING:
    import torch

CHANNELS = ["red", "green", "blue", "alpha"]
OPERATIONS = ["multiply", "add", "subtract", "and", "or", "xor"]


class MaskToImage(Node):
    display_name = "Convert Mask to Image"
    category = "mask"
    description = "Shows a mask as a grey image (the mask value in all three channels)."
    inputs = (Input("mask", "MASK"),)
    outputs = (Output("IMAGE"),)

    def run(self, mask: Any) -> tuple:
        m = mask_input("mask", mask)
        return (m.unsqueeze(-1).expand(-1, -1, -1, 3).clone(),)


class ImageToMask(Node):
    display_name = "Convert Image to Mask"
    category = "mask"
    description = "Takes one channel of an image as a mask."
    inputs = (Input("image", "IMAGE"), Combo("channel", CHANNELS))
    outputs = (Output("MASK"),)

    def run(self, image: Any, channel: str) -> tuple:
        image = image_input("image", image)
        index = CHANNELS.index(channel)
        if index >= image.shape[-1]:
            raise ValueError(
                f"input 'channel': the image has {image.shape[-1]} channels, no {channel} channel "
                "(an image from LoadImage has no alpha: use LoadImage's MASK output)"
            )
        return (image[..., index].clone(),)


class ImageColorToMask(Node):
    category = "mask"
    description = "Selects the pixels of exactly one colour (0xRRGGBB, on 8-bit values) as a mask."
    inputs = (Input("image", "IMAGE"), Int("color", 0, min=0, max=0xFFFFFF, step=1, display="number"))
    outputs = (Output("MASK"),)

    def run(self, image: Any, color: int) -> tuple:
        import torch

        image = image_input("image", image)
        rgb = (image[..., :3].clamp(0, 1) * 255.0).round().to(torch.int64)
        packed = (rgb[..., 0] << 16) + (rgb[..., 1] << 8) + rgb[..., 2]
        return ((packed == int(color)).float(),)


class SolidMask(Node):
    category = "mask"
    description = "A mask of one value everywhere."
    inputs = (
        Float("value", 1.0, min=0.0, max=1.0, step=0.01),
        Int("width", 512, min=1, max=MAX_RESOLUTION, step=1),
        Int("height", 512, min=1, max=MAX_RESOLUTION, step=1),
    )
    outputs = (Output("MASK"),)

    @classmethod
    def estimate(cls, width: int = 512, height: int = 512) -> Estimate:
        shape = (1, height, width)
        return est.new_tensor(shape, "width", est.describe("mask", shape))

    def run(self, value: float, width: int, height: int) -> tuple:
        import torch

        return (torch.full((1, height, width), float(value), dtype=torch.float32),)


class InvertMask(Node):
    category = "mask"
    description = "1 - mask: the selection becomes the rest."
    inputs = (Input("mask", "MASK"),)
    outputs = (Output("MASK"),)

    def run(self, mask: Any) -> tuple:
        return (1.0 - mask_input("mask", mask),)


class CropMask(Node):
    category = "mask"
    description = "Cuts a rectangle out of the mask (pixels; clipped at the mask's edges)."
    inputs = (
        Input("mask", "MASK"),
        Int("x", 0, min=0, max=MAX_RESOLUTION, step=1),
        Int("y", 0, min=0, max=MAX_RESOLUTION, step=1),
        Int("width", 512, min=1, max=MAX_RESOLUTION, step=1),
        Int("height", 512, min=1, max=MAX_RESOLUTION, step=1),
    )
    outputs = (Output("MASK"),)

    @classmethod
    def estimate(cls, mask: Any = None, width: int = 512, height: int = 512) -> Estimate | None:
        info = est.tensor(mask, 3)
        if info is None:
            return None
        b, h, w = info.shape
        shape = (b, min(height, h), min(width, w))
        return est.new_tensor(shape, "width", est.describe("mask", shape))

    def run(self, mask: Any, x: int, y: int, width: int, height: int) -> tuple:
        m = mask_input("mask", mask)
        return (m[:, y : y + height, x : x + width].clone(),)


def combine_masks(destination: torch.Tensor, source: torch.Tensor, x: int, y: int, operation: str) -> torch.Tensor:
    """``destination`` with ``source`` combined into it at ``x, y`` (the part that fits), clamped to 0..1.

    ``and``/``or``/``xor`` work on the rounded (0/1) values, as ComfyUI's do. A batch of one
    on either side is used for every item of the other.
    """
    import torch

    batch = max(destination.shape[0], source.shape[0])
    out = destination.expand(batch, -1, -1).clone() if destination.shape[0] == 1 else destination.clone()
    if source.shape[0] == 1:
        source = source.expand(batch, -1, -1)
    elif source.shape[0] != batch:
        raise ValueError(
            f"input 'source' has {source.shape[0]} masks and 'destination' {destination.shape[0]}; "
            "give one of them a single mask or both the same number"
        )
    height, width = out.shape[-2:]
    h, w = min(source.shape[-2], height - y), min(source.shape[-1], width - x)
    if h <= 0 or w <= 0:
        return out.clamp(0.0, 1.0)
    dst = out[:, y : y + h, x : x + w]
    src = source[:, :h, :w].to(dst)
    if operation == "multiply":
        result = dst * src
    elif operation == "add":
        result = dst + src
    elif operation == "subtract":
        result = dst - src
    elif operation in ("and", "or", "xor"):
        fn = {"and": torch.logical_and, "or": torch.logical_or, "xor": torch.logical_xor}[operation]
        result = fn(dst.round().bool(), src.round().bool()).to(dst.dtype)
    else:
        raise ValueError(f"input 'operation': unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
    out[:, y : y + h, x : x + w] = result
    return out.clamp(0.0, 1.0)


class MaskComposite(Node):
    category = "mask"
    description = (
        "Combines source into destination at x, y: multiply, add, subtract, or the logical "
        "and/or/xor of the rounded masks. The result is clamped to 0..1."
    )
    inputs = (
        Input("destination", "MASK"),
        Input("source", "MASK"),
        Int("x", 0, min=0, max=MAX_RESOLUTION, step=1),
        Int("y", 0, min=0, max=MAX_RESOLUTION, step=1),
        Combo("operation", OPERATIONS),
    )
    outputs = (Output("MASK"),)

    def run(self, destination: Any, source: Any, x: int, y: int, operation: str) -> tuple:
        return (combine_masks(mask_input("destination", destination), mask_input("source", source), x, y, operation),)


def feather_edges(mask: torch.Tensor, left: int, top: int, right: int, bottom: int) -> torch.Tensor:
    """Fade the mask linearly towards its borders: the outermost of ``n`` feathered rows or
    columns keeps 1/n of its value, the innermost n/n."""
    import torch

    out = mask.clone()
    height, width = out.shape[-2:]

    def ramp(n: int, length: int) -> torch.Tensor:
        n = min(n, length)
        weights = torch.ones(length, dtype=out.dtype)
        if n > 0:
            weights[:n] = torch.arange(1, n + 1, dtype=out.dtype) / n
        return weights

    columns = ramp(left, width) * ramp(right, width).flip(0)
    rows = ramp(top, height) * ramp(bottom, height).flip(0)
    return out * rows.view(1, -1, 1) * columns.view(1, 1, -1)


class FeatherMask(Node):
    category = "mask"
    description = "Fades the mask out linearly over the given number of pixels at each edge."
    inputs = (
        Input("mask", "MASK"),
        Int("left", 0, min=0, max=MAX_RESOLUTION, step=1),
        Int("top", 0, min=0, max=MAX_RESOLUTION, step=1),
        Int("right", 0, min=0, max=MAX_RESOLUTION, step=1),
        Int("bottom", 0, min=0, max=MAX_RESOLUTION, step=1),
    )
    outputs = (Output("MASK"),)

    def run(self, mask: Any, left: int, top: int, right: int, bottom: int) -> tuple:
        return (feather_edges(mask_input("mask", mask), left, top, right, bottom),)


def grow(mask: torch.Tensor, expand: int, tapered_corners: bool = True) -> torch.Tensor:
    """Grey dilation (``expand > 0``) or erosion (``< 0``) by ``|expand|`` pixels.

    Each pass takes the max (min) over a 3x3 footprint: the full square, or the plus shape
    with ``tapered_corners`` (which rounds the corners of grown shapes). Edges repeat the
    border value, so nothing grows in from outside the image.
    """
    import torch
    import torch.nn.functional as F

    out = mask.unsqueeze(1).float()
    if expand == 0:
        return mask.clone()
    reduce = torch.amax if expand > 0 else torch.amin
    for _ in range(abs(expand)):
        padded = F.pad(out, (1, 1, 1, 1), mode="replicate")
        if tapered_corners:
            shifts = [
                padded[..., 1:-1, 1:-1],
                padded[..., :-2, 1:-1],
                padded[..., 2:, 1:-1],
                padded[..., 1:-1, :-2],
                padded[..., 1:-1, 2:],
            ]
        else:
            h, w = out.shape[-2:]
            shifts = [padded[..., dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
        out = reduce(torch.stack(shifts), dim=0)
    return out.squeeze(1).to(mask.dtype)


class GrowMask(Node):
    display_name = "Grow Mask"
    category = "mask"
    description = "Grows the mask by expand pixels (shrinks it when negative)."
    inputs = (
        Input("mask", "MASK"),
        Int("expand", 0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION, step=1),
        Boolean("tapered_corners", True),
    )
    outputs = (Output("MASK"),)

    def run(self, mask: Any, expand: int, tapered_corners: bool) -> tuple:
        return (grow(mask_input("mask", mask), expand, tapered_corners),)


class ThresholdMask(Node):
    category = "mask"
    description = "1 where the mask is above value, else 0."
    inputs = (Input("mask", "MASK"), Float("value", 0.5, min=0.0, max=1.0, step=0.01))
    outputs = (Output("MASK"),)

    def run(self, mask: Any, value: float) -> tuple:
        return ((mask_input("mask", mask) > value).float(),)


class MaskPreview(Node):
    display_name = "Preview Mask"
    category = "mask"
    description = "Shows the mask in the client as a grey image (written to the temporary folder only)."
    output_node = True
    inputs = (Input("mask", "MASK"), Hidden("prompt", "PROMPT"), Hidden("extra_pnginfo", "EXTRA_PNGINFO"))
    outputs = ()

    def run(self, mask: Any, prompt: Any = None, extra_pnginfo: Any = None) -> Result:
        import random

        from .diffusion.image import save_images

        image = MaskToImage().run(mask)[0]
        suffix = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
        saved = save_images(image, "temp", f"Weft_temp_{suffix}", prompt, extra_pnginfo, compress_level=1)
        return Result(ui={"images": saved})


NODES = [
    MaskToImage,
    ImageToMask,
    ImageColorToMask,
    SolidMask,
    InvertMask,
    CropMask,
    MaskComposite,
    FeatherMask,
    GrowMask,
    ThresholdMask,
    MaskPreview,
]
