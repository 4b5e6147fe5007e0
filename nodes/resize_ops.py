"""ComfyUI's ``ResizeImageMaskNode`` ("Resize Image/Mask"): one node that resizes an IMAGE or a
MASK by one of eight rules, chosen in a dynamic combo whose option brings that rule's widgets.

The output has the input's type (a type variable), so the node sits in front of either kind.
The sizes follow ComfyUI's arithmetic (``round`` of the scaled side); where ComfyUI 0.8.0
departs from its own description it is followed in the corrected form ComfyUI later took:
"scale shorter dimension" keeps the aspect ratio of portrait inputs too (0.8.0 made them
square). A side that rounds to zero becomes one pixel, and a zero target size is refused with
the input's name, where ComfyUI fails inside torch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .api import Combo, Float, Input, Int, Node
from .dynamic import DynamicCombo, MatchOutput, MatchType
from .tensors import MAX_RESOLUTION, image_input, mask_input, resize_to

if TYPE_CHECKING:
    import torch

SCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
CROP_METHODS = ["disabled", "center"]


def _size(name: str, default: int = 512) -> Any:
    return Int(name, default, min=0, max=MAX_RESOLUTION, step=1)


def _crop() -> Any:
    return Combo("crop", CROP_METHODS, default="center")


RESIZE_TYPES = (
    ("scale by multiplier", (Float("multiplier", 1.0, min=0.01, max=8.0, step=0.01),)),
    ("scale dimensions", (_size("width"), _size("height"), _crop())),
    ("scale longer dimension", (_size("longer_size"),)),
    ("scale shorter dimension", (_size("shorter_size"),)),
    ("scale width", (_size("width"),)),
    ("scale height", (_size("height"),)),
    ("scale total pixels", (Float("megapixels", 1.0, min=0.01, max=16.0, step=0.01),)),
    ("match size", (Input("match", "IMAGE,MASK"), _crop())),
)


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise ValueError(f"ResizeImageMaskNode: input 'resize_type.{name}' must be at least 1 for this resize type")
    return value


def _side(value: float) -> int:
    return max(1, round(value))


def _by_sides(rule: dict[str, Any], width: int, height: int) -> tuple[int, int, str] | None:
    """ "scale dimensions", "scale width", "scale height": a zero side follows the aspect ratio."""
    kind = rule["resize_type"]
    new_w = 0 if kind == "scale height" else rule.get("width", 0)
    new_h = 0 if kind == "scale width" else rule.get("height", 0)
    if new_w == 0 and new_h == 0:
        return None
    if new_w == 0:
        new_w = _side(width * new_h / height)
    elif new_h == 0:
        new_h = _side(height * new_w / width)
    crop = (rule.get("crop") or "disabled") if kind == "scale dimensions" else "disabled"
    return new_w, new_h, crop


def _by_one_side(rule: dict[str, Any], width: int, height: int) -> tuple[int, int, str]:
    """ "scale longer dimension", "scale shorter dimension": that side set, the aspect ratio kept."""
    longer = rule["resize_type"] == "scale longer dimension"
    name = "longer_size" if longer else "shorter_size"
    size = _positive(rule[name], name)
    if width == height:
        return size, size, "disabled"
    if (height > width) == longer:  # the side to set is the height
        return _side(width / height * size), size, "disabled"
    return size, _side(height / width * size), "disabled"


def _matching(rule: dict[str, Any]) -> tuple[int, int, str]:
    match = rule.get("match")
    if match is None:
        raise ValueError("ResizeImageMaskNode: input 'resize_type.match' needs an IMAGE or a MASK")
    is_image = match.dim() == 4
    width, height = match.shape[-2 if is_image else -1], match.shape[-3 if is_image else -2]
    return int(width), int(height), rule.get("crop") or "disabled"


def target_size(rule: dict[str, Any], width: int, height: int) -> tuple[int, int, str] | None:
    """``(width, height, crop)`` for an input of ``width`` x ``height``; ``None`` keeps it as is."""
    kind = rule["resize_type"]
    if kind == "scale by multiplier":
        return _side(width * rule["multiplier"]), _side(height * rule["multiplier"]), "disabled"
    if kind in ("scale dimensions", "scale width", "scale height"):
        return _by_sides(rule, width, height)
    if kind in ("scale longer dimension", "scale shorter dimension"):
        return _by_one_side(rule, width, height)
    if kind == "scale total pixels":
        factor = math.sqrt(int(rule["megapixels"] * 1024 * 1024) / (width * height))
        return _side(width * factor), _side(height * factor), "disabled"
    if kind == "match size":
        return _matching(rule)
    raise ValueError(f"ResizeImageMaskNode: unsupported resize_type {kind!r}")


def resize_image_or_mask(value: torch.Tensor, rule: dict[str, Any], method: str) -> torch.Tensor:
    """An IMAGE ``[B, H, W, C]`` or a MASK ``[B, H, W]`` resized by ``rule`` (the nested combo)."""
    is_image = value.dim() == 4
    frames = image_input("input", value).movedim(-1, 1) if is_image else mask_input("input", value).unsqueeze(1)
    target = target_size(rule, frames.shape[-1], frames.shape[-2])
    if target is None:
        return value
    width, height, crop = target
    out = resize_to(frames, width, height, method, crop)
    return out.movedim(1, -1) if is_image else out.squeeze(1)


class ResizeImageMaskNode(Node):
    display_name = "Resize Image/Mask"
    category = "transform"
    description = (
        "Resizes an image or a mask by a multiplier, to a size, by one side, to a pixel count or to match another."
    )
    inputs = (
        MatchType("input", "input_type", ("IMAGE", "MASK")),
        DynamicCombo("resize_type", [(key, list(specs)) for key, specs in RESIZE_TYPES]),
        Combo("scale_method", SCALE_METHODS, default="area"),
    )
    outputs = (MatchOutput("input_type", ("IMAGE", "MASK"), name="resized"),)

    def run(self, input: Any, resize_type: dict[str, Any], scale_method: str) -> tuple:
        return (resize_image_or_mask(input, resize_type, scale_method),)


NODES = [ResizeImageMaskNode]
