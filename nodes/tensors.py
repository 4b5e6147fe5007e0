"""Input checks and small tensor helpers shared by the image, mask and latent node packs.

The value conventions are ComfyUI's (see :mod:`nodes.diffusion.types`): IMAGE is
``[B, H, W, C]`` float in 0..1, MASK ``[B, H, W]`` (``[H, W]`` accepted), LATENT a dict with a
``"samples"`` tensor ``[B, C, h, w]``. The checks exist so that a wrong wire fails with the
input's name instead of a shape error deep inside torch. torch is imported inside functions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

MAX_RESOLUTION = 16384


def _shape(value: Any) -> str:
    import torch

    return str(tuple(value.shape)) if torch.is_tensor(value) else type(value).__name__


def image_input(name: str, value: Any) -> torch.Tensor:
    """An IMAGE ``[B, H, W, C]``; a ``ValueError`` naming ``name`` otherwise."""
    import torch

    if not torch.is_tensor(value) or value.dim() != 4:
        raise ValueError(f"input '{name}' is not an IMAGE ([batch, height, width, channels]); got {_shape(value)}")
    return value


def mask_input(name: str, value: Any) -> torch.Tensor:
    """A MASK as ``[B, H, W]`` (``[H, W]`` and ``[B, 1, H, W]`` are reshaped, as ComfyUI's nodes do)."""
    import torch

    if not torch.is_tensor(value) or value.dim() not in (2, 3, 4) or (value.dim() == 4 and value.shape[1] != 1):
        raise ValueError(f"input '{name}' is not a MASK ([batch, height, width]); got {_shape(value)}")
    return value.reshape((-1, value.shape[-2], value.shape[-1]))


def latent_input(name: str, value: Any) -> torch.Tensor:
    """The ``samples`` tensor of a LATENT dict; a ``ValueError`` naming ``name`` otherwise."""
    import torch

    if not isinstance(value, dict) or not torch.is_tensor(value.get("samples")):
        raise ValueError(f"input '{name}' is not a LATENT (a dict with a 'samples' tensor)")
    return value["samples"]


def repeat_to_batch(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """Cut or tile ``tensor`` along dim 0 to ``batch`` items (ComfyUI's ``repeat_to_batch_size``)."""
    size = tensor.shape[0]
    if size > batch:
        return tensor[:batch]
    if size < batch:
        reps = math.ceil(batch / size)
        return tensor.repeat((reps,) + (1,) * (tensor.dim() - 1))[:batch]
    return tensor


def resize_to(
    x: torch.Tensor, width: int, height: int, method: str = "bilinear", crop: str = "disabled"
) -> torch.Tensor:
    """Resize ``[B, C, H, W]`` (ComfyUI's ``common_upscale`` for the methods Weft offers)."""
    from nodes.diffusion.latent import resize_nchw

    return resize_nchw(x, width, height, method, crop)


def gaussian_kernel(size: int, sigma: float, device: Any = None) -> torch.Tensor:
    """A normalised ``size`` x ``size`` Gaussian on coordinates spanning -1..1.

    ComfyUI's blur and sharpen nodes define sigma on that normalised grid (not in pixels),
    so the same sigma widens with the radius; the nodes keep that meaning.
    """
    import torch

    axis = torch.linspace(-1.0, 1.0, size, device=device)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    weights = torch.exp(-(xx * xx + yy * yy) / (2.0 * sigma * sigma))
    return weights / weights.sum()


def filter_nchw(x: torch.Tensor, kernel: torch.Tensor, radius: int) -> torch.Tensor:
    """Convolve each channel of ``[B, C, H, W]`` with ``kernel`` (``2r+1`` square), mirroring edges."""
    import torch.nn.functional as F

    channels = x.shape[1]
    weight = kernel.to(dtype=x.dtype, device=x.device).expand(channels, 1, *kernel.shape).contiguous()
    mode = "reflect" if radius < min(x.shape[-2:]) else "replicate"  # reflect needs the image wider than r
    padded = F.pad(x, (radius, radius, radius, radius), mode=mode)
    return F.conv2d(padded, weight, groups=channels)


def composite(
    destination: torch.Tensor,
    source: torch.Tensor,
    x: int,
    y: int,
    mask: torch.Tensor | None = None,
    multiplier: int = 1,
    resize_source: bool = False,
) -> torch.Tensor:
    """Paste ``source`` onto a copy of ``destination`` (both ``[B, C, H, W]``) at pixel ``x, y``.

    ``multiplier`` is how many pixels one element stands for (8 for latents, whose offsets are
    given in image pixels). ``mask`` (``[H, W]``/``[B, H, W]``, resized to the source) weighs
    the source against what it covers; without one the source replaces it. The source is
    tiled or cut to the destination's batch; what falls outside the destination is dropped.
    """
    import torch
    import torch.nn.functional as F

    out = destination.clone()
    source = source.to(device=out.device, dtype=out.dtype)
    if resize_source:
        source = F.interpolate(source, size=tuple(out.shape[-2:]), mode="bilinear", align_corners=False)
    source = repeat_to_batch(source, out.shape[0])
    if mask is None:
        weight = torch.ones_like(source[:, :1])
    else:
        weight = mask.to(device=out.device, dtype=out.dtype).reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
        weight = F.interpolate(weight, size=tuple(source.shape[-2:]), mode="bilinear", align_corners=False)
        weight = repeat_to_batch(weight, source.shape[0])
    left, top = x // multiplier, y // multiplier
    height, width = out.shape[-2:]
    src_h, src_w = source.shape[-2:]
    # the part of the source that lands inside the destination
    sx0, sy0 = max(0, -left), max(0, -top)
    sx1, sy1 = min(src_w, width - left), min(src_h, height - top)
    if sx1 <= sx0 or sy1 <= sy0:
        return out
    region = (..., slice(top + sy0, top + sy1), slice(left + sx0, left + sx1))
    w = weight[..., sy0:sy1, sx0:sx1]
    out[region] = source[..., sy0:sy1, sx0:sx1] * w + out[region] * (1.0 - w)
    return out
