"""CONDITIONING operations from ComfyUI's ``nodes.py``: concat, average, area by percentage,
area strength, timestep range, and the inpainting-model conditioning.

CONDITIONING is a list of ``[cond, options]`` pairs (see :mod:`nodes.diffusion.types`). These
nodes return new lists with copied option dicts; the guider
(:mod:`nodes.diffusion.guidance`) reads the options they set: ``area`` as
``("percentage", h, w, y, x)``, ``strength``, ``start_percent``/``end_percent`` (the entry is
skipped at steps outside that part of the schedule) and ``concat_latent_image``/``concat_mask``
(the extra input channels of inpainting models).
"""

from __future__ import annotations

import logging
from typing import Any

from .api import Boolean, Float, Input, Node, Output
from .tensors import image_input, mask_input

log = logging.getLogger("weft.conditioning")


def entries(conditioning: Any, input_name: str) -> list[list[Any]]:
    """A copy of a CONDITIONING list (new option dicts); a ``ValueError`` naming the input otherwise."""
    import torch

    ok = isinstance(conditioning, (list, tuple)) and all(
        isinstance(e, (list, tuple)) and len(e) == 2 and torch.is_tensor(e[0]) and isinstance(e[1], dict)
        for e in conditioning
    )
    if not ok:
        raise ValueError(f"input '{input_name}' is not a CONDITIONING (a list of [tensor, options] pairs)")
    return [[e[0], dict(e[1])] for e in conditioning]


def set_values(conditioning: Any, input_name: str, **values: Any) -> list[list[Any]]:
    out = entries(conditioning, input_name)
    for entry in out:
        entry[1].update(values)
    return out


def _first(conditioning: Any, input_name: str, node: str) -> list[Any]:
    found = entries(conditioning, input_name)
    if not found:
        raise ValueError(f"input '{input_name}' is an empty CONDITIONING")
    if len(found) > 1:
        log.warning("%s: %s has %d entries; only the first is used (as in ComfyUI)", node, input_name, len(found))
    return found[0]


class ConditioningConcat(Node):
    display_name = "Conditioning (Concat)"
    category = "conditioning"
    description = (
        "Appends conditioning_from's tokens to each entry of conditioning_to: one prompt attending to "
        "both texts (unlike Combine, which averages two predictions)."
    )
    inputs = (Input("conditioning_to", "CONDITIONING"), Input("conditioning_from", "CONDITIONING"))
    outputs = (Output("CONDITIONING"),)

    def run(self, conditioning_to: Any, conditioning_from: Any) -> tuple:
        import torch

        source = _first(conditioning_from, "conditioning_from", "ConditioningConcat")[0]
        out = entries(conditioning_to, "conditioning_to")
        for entry in out:
            if entry[0].shape[-1] != source.shape[-1]:
                raise ValueError(
                    f"input 'conditioning_from' has {source.shape[-1]}-wide embeddings, "
                    f"'conditioning_to' {entry[0].shape[-1]}: they come from different text encoders"
                )
            entry[0] = torch.cat((entry[0], source.to(entry[0])), dim=1)
        return (out,)


class ConditioningAverage(Node):
    category = "conditioning"
    description = (
        "Mixes two conditionings' embeddings: conditioning_to x strength + conditioning_from x "
        "(1 - strength), token by token (conditioning_from cut or zero-padded to the same length); "
        "the pooled outputs mix the same way."
    )
    inputs = (
        Input("conditioning_to", "CONDITIONING"),
        Input("conditioning_from", "CONDITIONING"),
        Float("conditioning_to_strength", 1.0, min=0.0, max=1.0, step=0.01),
    )
    outputs = (Output("CONDITIONING"),)

    def run(self, conditioning_to: Any, conditioning_from: Any, conditioning_to_strength: float) -> tuple:
        import torch

        source, source_options = _first(conditioning_from, "conditioning_from", "ConditioningAverage")
        pooled_from = source_options.get("pooled_output")
        w = float(conditioning_to_strength)
        out = entries(conditioning_to, "conditioning_to")
        for entry in out:
            target = entry[0]
            other = source[:, : target.shape[1]].to(target)
            if other.shape[1] < target.shape[1]:
                pad = torch.zeros(
                    (other.shape[0], target.shape[1] - other.shape[1], target.shape[2]), dtype=target.dtype
                )
                other = torch.cat([other, pad], dim=1)
            entry[0] = target * w + other * (1.0 - w)
            pooled_to = entry[1].get("pooled_output", pooled_from)
            if pooled_from is not None and pooled_to is not None:
                entry[1]["pooled_output"] = pooled_to * w + pooled_from * (1.0 - w)
            elif pooled_from is not None:
                entry[1]["pooled_output"] = pooled_from
        return (out,)


class ConditioningSetAreaPercentage(Node):
    display_name = "Conditioning (Set Area with Percentage)"
    category = "conditioning"
    description = "Limits the conditioning to a rectangle given as fractions of the image size."
    inputs = (
        Input("conditioning", "CONDITIONING"),
        Float("width", 1.0, min=0, max=1.0, step=0.01),
        Float("height", 1.0, min=0, max=1.0, step=0.01),
        Float("x", 0, min=0, max=1.0, step=0.01),
        Float("y", 0, min=0, max=1.0, step=0.01),
        Float("strength", 1.0, min=0.0, max=10.0, step=0.01),
    )
    outputs = (Output("CONDITIONING"),)

    def run(self, conditioning: Any, width: float, height: float, x: float, y: float, strength: float) -> tuple:
        return (
            set_values(
                conditioning,
                "conditioning",
                area=("percentage", height, width, y, x),
                strength=strength,
                set_area_to_bounds=False,
            ),
        )


class ConditioningSetAreaStrength(Node):
    category = "conditioning"
    description = "Sets how strongly the conditioning counts where areas overlap (its weight in the average)."
    inputs = (Input("conditioning", "CONDITIONING"), Float("strength", 1.0, min=0.0, max=10.0, step=0.01))
    outputs = (Output("CONDITIONING"),)

    def run(self, conditioning: Any, strength: float) -> tuple:
        return (set_values(conditioning, "conditioning", strength=strength),)


class ConditioningSetTimestepRange(Node):
    category = "advanced/conditioning"
    description = (
        "Applies the conditioning only between start and end (fractions of the noise schedule: 0 is "
        "the noisiest step); outside that range it is left out of the step's prediction."
    )
    inputs = (
        Input("conditioning", "CONDITIONING"),
        Float("start", 0.0, min=0.0, max=1.0, step=0.001),
        Float("end", 1.0, min=0.0, max=1.0, step=0.001),
    )
    outputs = (Output("CONDITIONING"),)

    def run(self, conditioning: Any, start: float, end: float) -> tuple:
        return (set_values(conditioning, "conditioning", start_percent=start, end_percent=end),)


def masked_pixels(pixels: Any, mask: Any, multiple: int = 8) -> tuple[Any, Any, Any]:
    """(original pixels, pixels with the masked area set to grey, mask at pixel size), the
    pixels centre-cropped to a multiple of ``multiple`` for the masked copy and the mask.

    The mask is resized to the image first (bilinear); grey is where ``mask.round()`` is 1.
    """
    import torch.nn.functional as F

    m = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).float()
    m = F.interpolate(m, size=(pixels.shape[1], pixels.shape[2]), mode="bilinear", align_corners=False)
    h, w = pixels.shape[1] // multiple * multiple, pixels.shape[2] // multiple * multiple
    top, left = (pixels.shape[1] % multiple) // 2, (pixels.shape[2] % multiple) // 2
    cropped = pixels[:, top : top + h, left : left + w, :3].clone()
    m = m[:, :, top : top + h, left : left + w]
    keep = (1.0 - m.round()).squeeze(1).unsqueeze(-1)
    if keep.shape[0] != cropped.shape[0]:
        keep = keep[:1] if cropped.shape[0] == 1 else keep[:1].expand(cropped.shape[0], -1, -1, -1)
    grey = (cropped - 0.5) * keep + 0.5
    return pixels, grey, m


class InpaintModelConditioning(Node):
    category = "conditioning/inpaint"
    description = (
        "Prepares inpainting: the latent of the image (with the mask as its noise mask) and, on both "
        "conditionings, the masked image's latent and the mask, which inpainting models (9-channel "
        "UNets) take as extra input; other models ignore them."
    )
    inputs = (
        Input("positive", "CONDITIONING"),
        Input("negative", "CONDITIONING"),
        Input("vae", "VAE"),
        Input("pixels", "IMAGE"),
        Input("mask", "MASK"),
        Boolean(
            "noise_mask",
            True,
            tooltip="Add a noise mask to the latent so sampling will only happen within the "
            "mask. Might improve results or completely break things depending on the "
            "model.",
        ),
    )
    outputs = (Output("CONDITIONING", "positive"), Output("CONDITIONING", "negative"), Output("LATENT", "latent"))

    def run(self, positive: Any, negative: Any, vae: Any, pixels: Any, mask: Any, noise_mask: bool = True) -> tuple:
        if not hasattr(vae, "encode"):
            raise ValueError("input 'vae' is not a VAE")
        pixels = image_input("pixels", pixels)
        original, grey, m = masked_pixels(pixels, mask_input("mask", mask))
        concat_latent = vae.encode(grey)
        latent: dict[str, Any] = {"samples": vae.encode(original[..., :3])}
        if noise_mask:
            latent["noise_mask"] = m
        values = {"concat_latent_image": concat_latent, "concat_mask": m}
        return (set_values(positive, "positive", **values), set_values(negative, "negative", **values), latent)


NODES = [
    ConditioningConcat,
    ConditioningAverage,
    ConditioningSetAreaPercentage,
    ConditioningSetAreaStrength,
    ConditioningSetTimestepRange,
    InpaintModelConditioning,
]
