"""LATENT operations (ComfyUI names and semantics): compositing, blending, crop/flip/rotate,
arithmetic, interpolation, batching and the batch's seed behaviour.

Sources: ComfyUI's ``nodes.py`` (LatentComposite, LatentBlend, LatentCrop, LatentFlip,
LatentRotate) and ``comfy_extras`` (nodes_latent, nodes_mask's LatentCompositeMasked).
Positions and sizes are in image pixels (8 per latent element). Every node returns a new
LATENT dict; keys other than ``samples`` (``noise_mask``, ``batch_index``) are carried from
the first input, as in ComfyUI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import estimates as est
from .api import Boolean, Combo, Estimate, Float, Input, Int, Node, Output
from .tensors import MAX_RESOLUTION, composite, latent_input, mask_input, repeat_to_batch, resize_to

if TYPE_CHECKING:
    import torch


def _with(latent: dict, samples: torch.Tensor) -> dict:
    out = dict(latent)
    out["samples"] = samples
    return out


def reshape_like(target: torch.Tensor, other: torch.Tensor, repeat_batch: bool = True) -> torch.Tensor:
    """``other`` resized (bilinear, centre crop) to ``target``'s size and, with
    ``repeat_batch``, tiled/cut to its batch: what ComfyUI's latent maths does with mismatches."""
    if tuple(other.shape[1:]) != tuple(target.shape[1:]):
        if other.shape[1] != target.shape[1]:
            raise ValueError(
                f"the latents have {target.shape[1]} and {other.shape[1]} channels; they are from "
                "different model families"
            )
        other = resize_to(other, target.shape[-1], target.shape[-2], "bilinear", "center")
    return repeat_to_batch(other, target.shape[0]) if repeat_batch else other


class LatentComposite(Node):
    display_name = "Latent Composite"
    category = "latent"
    description = (
        "Pastes samples_from onto samples_to at x, y; feather fades the pasted edges that lie inside "
        "samples_to over that many pixels."
    )
    inputs = (
        Input("samples_to", "LATENT"),
        Input("samples_from", "LATENT"),
        Int("x", 0, min=0, max=MAX_RESOLUTION, step=8),
        Int("y", 0, min=0, max=MAX_RESOLUTION, step=8),
        Int("feather", 0, min=0, max=MAX_RESOLUTION, step=8),
    )
    outputs = (Output("LATENT"),)

    def run(self, samples_to: dict, samples_from: dict, x: int, y: int, feather: int) -> tuple:
        import torch

        dst = latent_input("samples_to", samples_to)
        src = latent_input("samples_from", samples_from)
        x, y, feather = x // 8, y // 8, feather // 8
        out = dst.clone()
        h, w = max(0, min(src.shape[2], dst.shape[2] - y)), max(0, min(src.shape[3], dst.shape[3] - x))
        if h == 0 or w == 0:
            return (_with(samples_to, out),)
        src = repeat_to_batch(src[:, :, :h, :w], dst.shape[0]).to(out)
        if feather == 0:
            out[:, :, y : y + h, x : x + w] = src
            return (_with(samples_to, out),)
        ramp = torch.arange(1, feather + 1, dtype=out.dtype) / feather
        rows, cols = torch.ones(h, dtype=out.dtype), torch.ones(w, dtype=out.dtype)
        n_h, n_w = min(feather, h), min(feather, w)
        # fade only the edges that lie inside the destination (not those on its border)
        if y != 0:
            rows[:n_h] *= ramp[:n_h]
        if y + h < dst.shape[2]:
            rows[h - n_h :] *= ramp[:n_h].flip(0)
        if x != 0:
            cols[:n_w] *= ramp[:n_w]
        if x + w < dst.shape[3]:
            cols[w - n_w :] *= ramp[:n_w].flip(0)
        weight = rows.view(1, 1, -1, 1) * cols.view(1, 1, 1, -1)
        region = out[:, :, y : y + h, x : x + w]
        out[:, :, y : y + h, x : x + w] = src * weight + region * (1 - weight)
        return (_with(samples_to, out),)


class LatentCompositeMasked(Node):
    category = "latent"
    description = "Pastes source onto destination at x, y, weighted by the optional mask (resized to the source)."
    inputs = (
        Input("destination", "LATENT"),
        Input("source", "LATENT"),
        Int("x", 0, min=0, max=MAX_RESOLUTION, step=8),
        Int("y", 0, min=0, max=MAX_RESOLUTION, step=8),
        Boolean("resize_source", False),
        Input("mask", "MASK", optional=True),
    )
    outputs = (Output("LATENT"),)

    def run(self, destination: dict, source: dict, x: int, y: int, resize_source: bool, mask: Any = None) -> tuple:
        dst = latent_input("destination", destination)
        src = latent_input("source", source)
        m = mask_input("mask", mask) if mask is not None else None
        return (_with(destination, composite(dst, src, x, y, m, 8, resize_source)),)


class LatentBlend(Node):
    display_name = "Latent Blend"
    category = "_for_testing"
    description = (
        "samples1 x blend_factor + samples2 x (1 - blend_factor); samples2 is resized to samples1 when they differ."
    )
    inputs = (
        Input("samples1", "LATENT"),
        Input("samples2", "LATENT"),
        Float("blend_factor", 0.5, min=0, max=1, step=0.01),
    )
    outputs = (Output("LATENT"),)

    def run(self, samples1: dict, samples2: dict, blend_factor: float) -> tuple:
        s1 = latent_input("samples1", samples1)
        s2 = latent_input("samples2", samples2)
        if s1.shape != s2.shape:
            s2 = resize_to(s2, s1.shape[3], s1.shape[2], "bicubic", "center")
        return (_with(samples1, s1 * blend_factor + s2 * (1 - blend_factor)),)


class LatentCrop(Node):
    display_name = "Crop Latent"
    category = "latent/transform"
    description = "Cuts a rectangle (pixels, multiples of 8) out of the latent; x and y stop 64 pixels before the edge."
    inputs = (
        Input("samples", "LATENT"),
        Int("width", 512, min=64, max=MAX_RESOLUTION, step=8),
        Int("height", 512, min=64, max=MAX_RESOLUTION, step=8),
        Int("x", 0, min=0, max=MAX_RESOLUTION, step=8),
        Int("y", 0, min=0, max=MAX_RESOLUTION, step=8),
    )
    outputs = (Output("LATENT"),)

    @classmethod
    def estimate(cls, samples: Any = None, width: int = 512, height: int = 512) -> Estimate | None:
        info = est.tensor(samples, 4)
        if info is None:
            return None
        b, c, h, w = info.shape
        shape = (b, c, min(height // 8, h), min(width // 8, w))
        return est.new_tensor(shape, "width", est.describe("latent", shape))

    def run(self, samples: dict, width: int, height: int, x: int, y: int) -> tuple:
        s = latent_input("samples", samples)
        # keep at least 8 latent pixels (64 image pixels), as ComfyUI does
        x, y = min(x // 8, s.shape[3] - 8), min(y // 8, s.shape[2] - 8)
        x, y = max(x, 0), max(y, 0)
        return (_with(samples, s[:, :, y : y + height // 8, x : x + width // 8].clone()),)


class LatentFlip(Node):
    display_name = "Flip Latent"
    category = "latent/transform"
    description = "Mirrors the latent: x-axis flips top and bottom, y-axis left and right."
    inputs = (Input("samples", "LATENT"), Combo("flip_method", ["x-axis: vertically", "y-axis: horizontally"]))
    outputs = (Output("LATENT"),)

    def run(self, samples: dict, flip_method: str) -> tuple:
        import torch

        s = latent_input("samples", samples)
        dim = 2 if flip_method.startswith("x") else 3
        return (_with(samples, torch.flip(s, dims=[dim])),)


class LatentRotate(Node):
    display_name = "Rotate Latent"
    category = "latent/transform"
    description = "Rotates the latent clockwise by a quarter turn multiple."
    inputs = (Input("samples", "LATENT"), Combo("rotation", ["none", "90 degrees", "180 degrees", "270 degrees"]))
    outputs = (Output("LATENT"),)

    def run(self, samples: dict, rotation: str) -> tuple:
        import torch

        s = latent_input("samples", samples)
        quarters = {"90": 1, "180": 2, "270": 3}.get(rotation.split(" ")[0], 0)
        # dims (W, H): rotating from the width axis towards the height axis turns clockwise on screen
        return (_with(samples, torch.rot90(s, k=quarters, dims=[3, 2]).clone()),)


class LatentAdd(Node):
    category = "latent/advanced"
    description = "samples1 + samples2 (samples2 resized and batched like samples1)."
    inputs = (Input("samples1", "LATENT"), Input("samples2", "LATENT"))
    outputs = (Output("LATENT"),)

    def run(self, samples1: dict, samples2: dict) -> tuple:
        s1 = latent_input("samples1", samples1)
        return (_with(samples1, s1 + reshape_like(s1, latent_input("samples2", samples2))),)


class LatentSubtract(Node):
    category = "latent/advanced"
    description = "samples1 - samples2 (samples2 resized and batched like samples1)."
    inputs = (Input("samples1", "LATENT"), Input("samples2", "LATENT"))
    outputs = (Output("LATENT"),)

    def run(self, samples1: dict, samples2: dict) -> tuple:
        s1 = latent_input("samples1", samples1)
        return (_with(samples1, s1 - reshape_like(s1, latent_input("samples2", samples2))),)


class LatentMultiply(Node):
    category = "latent/advanced"
    description = "Scales the latent by multiplier."
    inputs = (Input("samples", "LATENT"), Float("multiplier", 1.0, min=-10.0, max=10.0, step=0.01))
    outputs = (Output("LATENT"),)

    def run(self, samples: dict, multiplier: float) -> tuple:
        return (_with(samples, latent_input("samples", samples) * multiplier),)


class LatentInterpolate(Node):
    category = "latent/advanced"
    description = (
        "Interpolates per pixel between the two latents' directions (channel vectors normalised), with "
        "the magnitude interpolated separately: ratio 1 is samples1, 0 is samples2."
    )
    inputs = (
        Input("samples1", "LATENT"),
        Input("samples2", "LATENT"),
        Float("ratio", 1.0, min=0.0, max=1.0, step=0.01),
    )
    outputs = (Output("LATENT"),)

    def run(self, samples1: dict, samples2: dict, ratio: float) -> tuple:
        import torch

        s1 = latent_input("samples1", samples1)
        s2 = reshape_like(s1, latent_input("samples2", samples2))
        # per-pixel length of the channel vector. (ComfyUI drops the channel dim of the norm, which
        # lines it up with the wrong axes for batches of more than one; the same for a batch of one.)
        m1 = torch.linalg.vector_norm(s1, dim=1, keepdim=True)
        m2 = torch.linalg.vector_norm(s2, dim=1, keepdim=True)
        d1 = torch.nan_to_num(s1 / m1)
        d2 = torch.nan_to_num(s2 / m2)
        mixed = d1 * ratio + d2 * (1.0 - ratio)
        direction = torch.nan_to_num(mixed / torch.linalg.vector_norm(mixed, dim=1, keepdim=True))
        return (_with(samples1, direction * (m1 * ratio + m2 * (1.0 - ratio))),)


class LatentBatch(Node):
    category = "latent/batch"
    deprecated = True
    description = "Joins two latent batches (samples2 resized to samples1); batch indices follow both."
    inputs = (Input("samples1", "LATENT"), Input("samples2", "LATENT"))
    outputs = (Output("LATENT"),)

    def run(self, samples1: dict, samples2: dict) -> tuple:
        import torch

        s1 = latent_input("samples1", samples1)
        s2 = reshape_like(s1, latent_input("samples2", samples2), repeat_batch=False)
        out = _with(samples1, torch.cat((s1, s2), dim=0))
        out["batch_index"] = list(samples1.get("batch_index", range(s1.shape[0]))) + list(
            samples2.get("batch_index", range(s2.shape[0]))
        )
        return (out,)


class LatentBatchSeedBehavior(Node):
    category = "latent/advanced"
    description = (
        "fixed: every latent of the batch gets the first one's noise (same seed); random: each gets "
        "its own noise from the batch's seed (the batch indices are dropped)."
    )
    inputs = (Input("samples", "LATENT"), Combo("seed_behavior", ["random", "fixed"], default="fixed"))
    outputs = (Output("LATENT"),)

    def run(self, samples: dict, seed_behavior: str) -> tuple:
        s = latent_input("samples", samples)
        out = dict(samples)
        if seed_behavior == "random":
            out.pop("batch_index", None)
        elif seed_behavior == "fixed":
            first = list(samples.get("batch_index", [0]))[0]
            out["batch_index"] = [first] * s.shape[0]
        return (out,)


NODES = [
    LatentComposite,
    LatentCompositeMasked,
    LatentBlend,
    LatentCrop,
    LatentFlip,
    LatentRotate,
    LatentAdd,
    LatentSubtract,
    LatentMultiply,
    LatentInterpolate,
    LatentBatch,
    LatentBatchSeedBehavior,
]
