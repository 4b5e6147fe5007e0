"""LATENT nodes: empty latents, resizing, batches, inpainting masks (ComfyUI's names).

A LATENT is ``{"samples": Tensor[B, 4, H/8, W/8]}`` of raw VAE latents, optionally with
``"noise_mask"`` (what the sampler may change) and ``"batch_index"`` (which images of a
larger batch these are, so their noise matches the full batch's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import estimates as est
from ..api import Combo, Estimate, Float, Input, Int, Node, Output

if TYPE_CHECKING:
    import torch

MAX_RESOLUTION = 16384
#: F.interpolate modes by ComfyUI name (bislerp, a ComfyUI-specific spherical blend, is not offered)
LATENT_UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic"]
IMAGE_UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]


def fill_aspect(w: int, h: int, width: int, height: int, minimum: int = 1) -> tuple[int, int]:
    """ComfyUI's "0 means keep the aspect ratio": a zero side follows from the other one.

    ``w``/``h`` is the current size (any unit: only its ratio counts); ``minimum`` bounds both
    sides of the result where one was derived.
    """
    if width == 0:
        height = max(minimum, height)
        width = max(minimum, round(w * height / h))
    elif height == 0:
        width = max(minimum, width)
        height = max(minimum, round(h * width / w))
    return width, height


def resize_nchw(x: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """Resize [B, C, H, W] to ``height`` x ``width``; ``crop="center"`` first crops the source
    to the target's aspect ratio so nothing is stretched."""
    import torch
    import torch.nn.functional as F

    if crop == "center":
        # ComfyUI's rounding (common_upscale): the same margin, rounded once, off both sides
        old_h, old_w = x.shape[-2:]
        old_aspect, new_aspect = old_w / old_h, width / height
        if old_aspect > new_aspect:
            off = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
            x = x[..., :, off : old_w - off]
        elif old_aspect < new_aspect:
            off = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
            x = x[..., off : old_h - off, :]
    if tuple(x.shape[-2:]) == (height, width):
        return x.clone()
    if method == "lanczos":
        import numpy as np
        from PIL import Image

        from .image import to_uint8  # here: image.py imports this module

        frames = []
        for item in x:
            arr = to_uint8(item.permute(1, 2, 0))  # truncated to 8 bits like ComfyUI's lanczos
            img = Image.fromarray(arr if arr.shape[-1] != 1 else arr[..., 0])
            img = img.resize((width, height), resample=Image.Resampling.LANCZOS)
            out = torch.from_numpy(np.asarray(img).astype(np.float32) / 255.0)
            frames.append(out.reshape(height, width, -1).permute(2, 0, 1))
        return torch.stack(frames).to(x.dtype)
    kwargs = {"align_corners": False} if method in ("bilinear", "bicubic") else {}
    return F.interpolate(x, size=(height, width), mode=method, **kwargs)


def _samples(name: str, latent: Any) -> torch.Tensor:
    import torch

    if not isinstance(latent, dict) or not torch.is_tensor(latent.get("samples")):
        raise ValueError(f"input '{name}' is not a LATENT (a dict with a 'samples' tensor)")
    return latent["samples"]


class EmptyLatentImage(Node):
    display_name = "Empty Latent Image"
    category = "latent"
    description = "An all-zero latent of the given size: the starting point of text-to-image."
    inputs = (
        Int("width", 512, min=16, max=MAX_RESOLUTION, step=8, tooltip="Image width in pixels."),
        Int("height", 512, min=16, max=MAX_RESOLUTION, step=8, tooltip="Image height in pixels."),
        Int("batch_size", 1, min=1, max=4096, tooltip="Number of images."),
    )
    outputs = (Output("LATENT"),)

    @classmethod
    def estimate(cls, width: int = 512, height: int = 512, batch_size: int = 1) -> Estimate:
        shape = (batch_size, 4, height // 8, width // 8)
        return est.new_tensor(shape, est.batch_driver(batch_size), est.describe("latent", shape))

    def run(self, width: int, height: int, batch_size: int) -> tuple:
        import torch

        return ({"samples": torch.zeros([batch_size, 4, height // 8, width // 8])},)


class LatentUpscale(Node):
    display_name = "Upscale Latent"
    category = "latent"
    description = "Resizes the latent to a pixel size (0 keeps the aspect ratio from the other side)."
    inputs = (
        Input("samples", "LATENT"),
        Combo("upscale_method", LATENT_UPSCALE_METHODS),
        Int("width", 512, min=0, max=MAX_RESOLUTION, step=8),
        Int("height", 512, min=0, max=MAX_RESOLUTION, step=8),
        Combo("crop", ["disabled", "center"]),
    )
    outputs = (Output("LATENT"),)

    @classmethod
    def estimate(cls, samples: Any = None, width: int = 0, height: int = 0) -> Estimate | None:
        info = est.tensor(samples, 4)
        if info is None:
            return None
        b, c, h, w = info.shape
        if width or height:
            width, height = est.fill_aspect(w, h, width, height, minimum=64)
            h, w = height // 8, width // 8
        return est.new_tensor((b, c, h, w), "width", est.describe("latent", (b, c, h, w)))

    def run(self, samples: dict, upscale_method: str, width: int, height: int, crop: str) -> tuple:
        x = _samples("samples", samples)
        if width == 0 and height == 0:
            return (dict(samples),)
        h, w = x.shape[-2:]
        width, height = fill_aspect(w, h, width, height, minimum=64)
        out = dict(samples)
        out["samples"] = resize_nchw(x, width // 8, height // 8, upscale_method, crop)
        return (out,)  # noise_mask kept as is: samplers resize it to the latent (as ComfyUI)


class LatentUpscaleBy(Node):
    display_name = "Upscale Latent By"
    category = "latent"
    description = "Resizes the latent by a factor."
    inputs = (
        Input("samples", "LATENT"),
        Combo("upscale_method", LATENT_UPSCALE_METHODS),
        Float("scale_by", 1.5, min=0.01, max=8.0, step=0.01),
    )
    outputs = (Output("LATENT"),)

    @classmethod
    def estimate(cls, samples: Any = None, scale_by: float = 1.0) -> Estimate | None:
        info = est.tensor(samples, 4)
        if info is None:
            return None
        b, c, h, w = info.shape
        shape = (b, c, max(1, round(h * scale_by)), max(1, round(w * scale_by)))
        return est.new_tensor(shape, "scale_by", est.describe("latent", shape))

    def run(self, samples: dict, upscale_method: str, scale_by: float) -> tuple:
        x = _samples("samples", samples)
        width, height = max(1, round(x.shape[-1] * scale_by)), max(1, round(x.shape[-2] * scale_by))
        out = dict(samples)
        out["samples"] = resize_nchw(x, width, height, upscale_method)
        return (out,)  # noise_mask kept as is: samplers resize it to the latent (as ComfyUI)


class LatentFromBatch(Node):
    display_name = "Latent From Batch"
    category = "latent/batch"
    description = "Takes length latents starting at batch_index out of a batch."
    inputs = (Input("samples", "LATENT"), Int("batch_index", 0, min=0, max=63), Int("length", 1, min=1, max=64))
    outputs = (Output("LATENT"),)

    @classmethod
    def estimate(cls, samples: Any = None, batch_index: int = 0, length: int = 1) -> Estimate | None:
        info = est.tensor(samples, 4)
        if info is None:
            return None
        b, c, h, w = info.shape
        shape = (max(0, min(b - batch_index, length)), c, h, w)
        return est.new_tensor(shape, "length", est.describe("latent", shape))

    def run(self, samples: dict, batch_index: int, length: int) -> tuple:
        x = _samples("samples", samples)
        size = x.shape[0]
        if batch_index >= size:
            raise IndexError(
                f"input 'batch_index' is {batch_index} but the latent batch has only {size} "
                f"image(s) (indices 0..{size - 1})"
            )
        length = min(size - batch_index, length)
        out = dict(samples)
        out["samples"] = x[batch_index : batch_index + length].clone()
        mask = samples.get("noise_mask")
        if mask is not None:
            if mask.shape[0] == 1:
                out["noise_mask"] = mask.clone()
            else:
                if mask.shape[0] < size:
                    mask = mask.repeat((size + mask.shape[0] - 1) // mask.shape[0], 1, 1, 1)[:size]
                out["noise_mask"] = mask[batch_index : batch_index + length].clone()
        if "batch_index" in samples:
            out["batch_index"] = list(samples["batch_index"][batch_index : batch_index + length])
        else:
            out["batch_index"] = list(range(batch_index, batch_index + length))
        return (out,)


class RepeatLatentBatch(Node):
    display_name = "Repeat Latent Batch"
    category = "latent/batch"
    description = "Repeats the latent batch amount times."
    inputs = (Input("samples", "LATENT"), Int("amount", 1, min=1, max=64))
    outputs = (Output("LATENT"),)

    @classmethod
    def estimate(cls, samples: Any = None, amount: int = 1) -> Estimate | None:
        info = est.tensor(samples, 4)
        if info is None:
            return None
        b, c, h, w = info.shape
        shape = (b * amount, c, h, w)
        return est.new_tensor(shape, "amount", est.describe("latent", shape))

    def run(self, samples: dict, amount: int) -> tuple:
        x = _samples("samples", samples)
        out = dict(samples)
        out["samples"] = x.repeat(amount, 1, 1, 1)
        mask = samples.get("noise_mask")
        if mask is not None and mask.shape[0] > 1:
            if mask.shape[0] < x.shape[0]:
                mask = mask.repeat((x.shape[0] + mask.shape[0] - 1) // mask.shape[0], 1, 1, 1)[: x.shape[0]]
            out["noise_mask"] = mask.repeat(amount, 1, 1, 1)
        if "batch_index" in samples:
            idx = list(samples["batch_index"])
            offset = max(idx) - min(idx) + 1
            out["batch_index"] = idx + [i + r * offset for r in range(1, amount) for i in idx]
        return (out,)


class SetLatentNoiseMask(Node):
    display_name = "Set Latent Noise Mask"
    category = "latent/inpaint"
    description = "Limits sampling to the masked area; the rest of the latent is kept (inpainting)."
    inputs = (Input("samples", "LATENT"), Input("mask", "MASK"))
    outputs = (Output("LATENT"),)

    def run(self, samples: dict, mask: Any) -> tuple:
        import torch

        _samples("samples", samples)
        if not torch.is_tensor(mask) or mask.dim() not in (2, 3):
            raise ValueError("input 'mask' is not a MASK ([batch, height, width] or [height, width])")
        out = dict(samples)
        out["noise_mask"] = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).float()
        return (out,)


NODES = [EmptyLatentImage, LatentUpscale, LatentUpscaleBy, LatentFromBatch, RepeatLatentBatch, SetLatentNoiseMask]
