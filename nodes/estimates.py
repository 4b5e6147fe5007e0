"""Shapes and sizes for the nodes' memory estimates (see ``Node.estimate`` in nodes/api.py).

A LATENT is described by its ``samples`` tensor ``[B, C, h, w]``, an IMAGE by ``[B, H, W, C]``,
a MASK by ``[B, H, W]``, all float32, as the nodes make them. The VAE's working memory is the
decoder's last block at full resolution (128 channels, counted in half precision): a lower
bound of what a decode or encode allocates, so an estimate never refuses what would fit.
"""

from __future__ import annotations

from typing import Any

from engine.resources import Estimate, TensorInfo

#: pixels per latent cell of the SD-family VAEs (the smallest factor in use, so a lower bound)
VAE_FACTOR = 8
#: channels x bytes of the VAE's largest full-resolution activation (128 channels, fp16)
VAE_WORK_PER_PIXEL = 128 * 2


def tensor(value: Any, rank: int) -> TensorInfo | None:
    """``value`` if it describes a tensor of ``rank`` dimensions, else ``None`` (unknown)."""
    if isinstance(value, TensorInfo) and len(value.shape) == rank:
        return value
    return None


def new_tensor(shape: tuple[int, ...], input_name: str | None, what: str, extra_bytes: int = 0) -> Estimate:
    """The estimate of a node that makes one tensor of ``shape`` (plus ``extra_bytes`` of work)."""
    info = TensorInfo(tuple(max(0, int(d)) for d in shape))
    return Estimate(info.nbytes + extra_bytes, (info,), input_name, what)


def describe(kind: str, shape: tuple[int, ...]) -> str:
    return f"a {'x'.join(str(d) for d in shape)} {kind}"


def batch_driver(batch: int, name: str = "batch_size", size_name: str = "width") -> str:
    """The input to name in a refusal: the batch when it is more than one, else the size."""
    return name if batch > 1 else size_name


def fill_aspect(w: int, h: int, width: int, height: int, minimum: int = 1) -> tuple[int, int]:
    """nodes/diffusion/latent.py's rule (0 keeps the aspect ratio), without importing torch code."""
    if width == 0:
        height = max(minimum, height)
        width = max(minimum, round(w * height / h)) if h else minimum
    elif height == 0:
        width = max(minimum, width)
        height = max(minimum, round(h * width / w)) if w else minimum
    return width, height
