"""Joining any number of batches into one (ComfyUI's BatchImagesNode, BatchMasksNode,
BatchLatentsNode): one growing socket per batch (``images.image0``, ``images.image1``...,
up to 50), joined in socket order.

A batch holds one size, so every batch is fitted to the first one as ComfyUI does: resized
(bilinear, centre-cropped to the first's aspect ratio) and, for images, given an opaque
alpha channel where others have one. Latents keep the first latent's other keys and a
``batch_index`` that follows every batch, so seeded noise matches the separate batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api import Input, Node, Output
from .dynamic import Autogrow
from .tensors import image_input, latent_input, mask_input, resize_to

if TYPE_CHECKING:
    import torch

MAX_BATCHES = 50


def _values(node: str, name: str, given: dict[str, Any] | None) -> list[tuple[str, Any]]:
    items = [(f"{name}.{key}", value) for key, value in (given or {}).items()]
    if not items:
        raise ValueError(f"{node}: nothing to join; link at least one input to {name}")
    return items


def join_images(images: list[tuple[str, Any]]) -> torch.Tensor:
    """IMAGE batches ``[B, H, W, C]`` fitted to the first one's size and joined."""
    import torch

    frames = [image_input(name, value) for name, value in images]
    channels = max(frame.shape[-1] for frame in frames)
    height, width = frames[0].shape[1:3]
    fitted = []
    for frame in frames:
        if frame.shape[-1] < channels:  # RGB among RGBA: an opaque alpha
            frame = torch.nn.functional.pad(frame, (0, channels - frame.shape[-1]), value=1.0)
        if tuple(frame.shape[1:3]) != (height, width):
            frame = resize_to(frame.movedim(-1, 1), width, height, "bilinear", "center").movedim(1, -1)
        fitted.append(frame)
    return torch.cat(fitted, dim=0)


def join_masks(masks: list[tuple[str, Any]]) -> torch.Tensor:
    """MASK batches ``[B, H, W]`` fitted to the first one's size and joined."""
    import torch

    frames = [mask_input(name, value) for name, value in masks]
    height, width = frames[0].shape[1:]
    fitted = [
        frame
        if tuple(frame.shape[1:]) == (height, width)
        else resize_to(frame.unsqueeze(1), width, height, "bilinear", "center").squeeze(1)
        for frame in frames
    ]
    return torch.cat(fitted, dim=0)


def join_latents(latents: list[tuple[str, Any]]) -> dict[str, Any]:
    """LATENT batches fitted to the first one's size and joined; batch indices follow each."""
    import torch

    from .latent_ops import reshape_like

    first = latent_input(latents[0][0], latents[0][1])
    samples, indices = [], []
    for name, latent in latents:
        own = latent_input(name, latent)
        samples.append(reshape_like(first, own, repeat_batch=False))
        indices.extend(latent.get("batch_index", range(own.shape[0])))
    joined = dict(latents[0][1])
    joined["samples"] = torch.cat(samples, dim=0)
    joined["batch_index"] = list(indices)
    return joined


def _socket(kind: str, name: str) -> Any:
    return Autogrow(f"{name}s", Input(name, kind), prefix=name, min=2, max=MAX_BATCHES)


class BatchImagesNode(Node):
    display_name = "Batch Images"
    category = "image"
    description = "Joins image batches into one, each fitted to the first one's size."
    inputs = (_socket("IMAGE", "image"),)
    outputs = (Output("IMAGE"),)

    def run(self, images: dict[str, Any] | None = None) -> tuple:
        return (join_images(_values("BatchImagesNode", "images", images)),)


class BatchMasksNode(Node):
    display_name = "Batch Masks"
    category = "mask"
    description = "Joins mask batches into one, each fitted to the first one's size."
    inputs = (_socket("MASK", "mask"),)
    outputs = (Output("MASK"),)

    def run(self, masks: dict[str, Any] | None = None) -> tuple:
        return (join_masks(_values("BatchMasksNode", "masks", masks)),)


class BatchLatentsNode(Node):
    display_name = "Batch Latents"
    category = "latent"
    description = "Joins latent batches into one, each fitted to the first one's size; batch indices follow."
    inputs = (_socket("LATENT", "latent"),)
    outputs = (Output("LATENT"),)

    def run(self, latents: dict[str, Any] | None = None) -> tuple:
        return (join_latents(_values("BatchLatentsNode", "latents", latents)),)


NODES = [BatchImagesNode, BatchMasksNode, BatchLatentsNode]
