"""Text encoding and conditioning nodes (ComfyUI names, inputs and semantics).

CONDITIONING is a list of ``[cond, options]`` pairs (see :mod:`nodes.diffusion.types`);
these nodes never modify their inputs: they return new lists with copied option dicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.api import Combo, Float, Input, Int, Node, Output, String

if TYPE_CHECKING:
    from .types import TextEncoder

MAX_RESOLUTION = 16384


class ConditioningInputError(ValueError):
    """A conditioning node got an input it cannot use; names the input."""


def _require_clip(clip: Any, input_name: str = "clip") -> TextEncoder:
    from .types import MissingComponent, TextEncoder

    if isinstance(clip, MissingComponent):
        raise ConditioningInputError(f"{input_name}: {clip.message}")
    if not isinstance(clip, TextEncoder):
        raise ConditioningInputError(f"{input_name}: expected a CLIP from a loader node, got {type(clip).__name__}")
    return clip


def _entries(conditioning: Any, input_name: str) -> list[list[Any]]:
    if not isinstance(conditioning, list) or not all(
        isinstance(e, (list, tuple)) and len(e) == 2 for e in conditioning
    ):
        raise ConditioningInputError(f"{input_name}: expected CONDITIONING (a list of [tensor, options] pairs)")
    return [[e[0], dict(e[1])] for e in conditioning]


class CLIPTextEncode(Node):
    display_name = "CLIP Text Encode (Prompt)"
    category = "conditioning"
    description = (
        "Encodes a text prompt with a CLIP model into conditioning for the diffusion model. "
        "(word:1.2) weights a word, (word) is 1.1, [word] is 1/1.1; \\( writes a bracket."
    )
    inputs = (
        String("text", multiline=True, dynamicPrompts=True, tooltip="The text to be encoded."),
        Input("clip", "CLIP", tooltip="The CLIP model used for encoding the text."),
    )
    outputs = (Output("CONDITIONING", tooltip="A conditioning containing the embedded text."),)

    def run(self, text: str, clip: TextEncoder) -> list[list[Any]]:
        from .detect import ModelFileError

        clip = _require_clip(clip)
        try:
            return clip.encode_conditioning(text)
        except ModelFileError as exc:  # an embedding file the user named in the text
            raise ConditioningInputError(f"text: {exc}") from exc


class CLIPTextEncodeSDXL(Node):
    display_name = "CLIPTextEncodeSDXL"
    category = "advanced/conditioning"
    description = (
        "SDXL text encoding with a prompt per encoder (text_g for OpenCLIP bigG, text_l for CLIP-L) "
        "and the size conditioning SDXL was trained with (original size, crop, target size)."
    )
    inputs = (
        Input("clip", "CLIP"),
        Int("width", 1024, min=0, max=MAX_RESOLUTION),
        Int("height", 1024, min=0, max=MAX_RESOLUTION),
        Int("crop_w", 0, min=0, max=MAX_RESOLUTION),
        Int("crop_h", 0, min=0, max=MAX_RESOLUTION),
        Int("target_width", 1024, min=0, max=MAX_RESOLUTION),
        Int("target_height", 1024, min=0, max=MAX_RESOLUTION),
        String("text_g", multiline=True, dynamicPrompts=True),
        String("text_l", multiline=True, dynamicPrompts=True),
    )
    outputs = (Output("CONDITIONING"),)

    def run(
        self,
        clip: TextEncoder,
        width: int,
        height: int,
        crop_w: int,
        crop_h: int,
        target_width: int,
        target_height: int,
        text_g: str,
        text_l: str,
    ) -> list[list[Any]]:
        from .clip_text import encode_texts

        clip = _require_clip(clip)
        if clip.family != "sdxl" or len(clip.parts) != 2:
            raise ConditioningInputError(f"clip: CLIPTextEncodeSDXL needs an SDXL CLIP, got a {clip.family} one")
        cond, pooled = encode_texts(clip, [text_l, text_g])
        return [
            [
                cond,
                {
                    "pooled_output": pooled,
                    "width": width,
                    "height": height,
                    "crop_w": crop_w,
                    "crop_h": crop_h,
                    "target_width": target_width,
                    "target_height": target_height,
                },
            ]
        ]


class CLIPTextEncodeSDXLRefiner(Node):
    category = "advanced/conditioning"
    description = (
        "Text encoding for the SDXL refiner: the prompt with an aesthetic score (the refiner was trained "
        "on it: about 6 for the positive, 2.5 for the negative) and the original image size. Weft does not "
        "load refiner checkpoints (their CLIP is OpenCLIP bigG alone); with an SDXL CLIP it encodes as "
        "ComfyUI does, and SDXL base models use the size."
    )
    inputs = (
        Float("ascore", 6.0, min=0.0, max=1000.0, step=0.01),
        Int("width", 1024, min=0, max=MAX_RESOLUTION),
        Int("height", 1024, min=0, max=MAX_RESOLUTION),
        String("text", multiline=True, dynamicPrompts=True),
        Input("clip", "CLIP"),
    )
    outputs = (Output("CONDITIONING"),)

    def run(self, ascore: float, width: int, height: int, text: str, clip: TextEncoder) -> list[list[Any]]:
        conditioning = CLIPTextEncode().run(text, clip)
        extra = {"aesthetic_score": ascore, "width": width, "height": height}
        return [[cond, {**options, **extra}] for cond, options in conditioning]


class CLIPSetLastLayer(Node):
    display_name = "CLIP Set Last Layer"
    category = "conditioning"
    description = "Uses an earlier layer of the text encoder as its output (-1 last, -2 penultimate: 'clip skip 2')."
    inputs = (Input("clip", "CLIP"), Int("stop_at_clip_layer", -1, min=-24, max=-1, step=1))
    outputs = (Output("CLIP"),)

    def run(self, clip: TextEncoder, stop_at_clip_layer: int) -> TextEncoder:
        return _require_clip(clip).clone(clip_skip=stop_at_clip_layer)


class ConditioningCombine(Node):
    display_name = "Conditioning (Combine)"
    category = "conditioning"
    description = "Both conditionings guide the image: their predictions are averaged (by area and strength)."
    inputs = (Input("conditioning_1", "CONDITIONING"), Input("conditioning_2", "CONDITIONING"))
    outputs = (Output("CONDITIONING"),)

    def run(self, conditioning_1: list, conditioning_2: list) -> list[list[Any]]:
        return _entries(conditioning_1, "conditioning_1") + _entries(conditioning_2, "conditioning_2")


class ConditioningSetArea(Node):
    display_name = "Conditioning (Set Area)"
    category = "conditioning"
    description = "Limits the conditioning to a rectangle of the image (pixels, multiples of 8)."
    inputs = (
        Input("conditioning", "CONDITIONING"),
        Int("width", 64, min=64, max=MAX_RESOLUTION, step=8),
        Int("height", 64, min=64, max=MAX_RESOLUTION, step=8),
        Int("x", 0, min=0, max=MAX_RESOLUTION, step=8),
        Int("y", 0, min=0, max=MAX_RESOLUTION, step=8),
        Float("strength", 1.0, min=0.0, max=10.0, step=0.01),
    )
    outputs = (Output("CONDITIONING"),)

    def run(self, conditioning: list, width: int, height: int, x: int, y: int, strength: float) -> list[list[Any]]:
        out = _entries(conditioning, "conditioning")
        for entry in out:
            entry[1]["area"] = (height // 8, width // 8, y // 8, x // 8)
            entry[1]["strength"] = strength
            entry[1]["set_area_to_bounds"] = False
        return out


class ConditioningSetMask(Node):
    display_name = "Conditioning (Set Mask)"
    category = "conditioning"
    description = (
        "Limits the conditioning to a mask. 'mask bounds' denoises only the mask's bounding box "
        "with this conditioning, at full resolution."
    )
    inputs = (
        Input("conditioning", "CONDITIONING"),
        Input("mask", "MASK"),
        Float("strength", 1.0, min=0.0, max=10.0, step=0.01),
        Combo("set_cond_area", ["default", "mask bounds"]),
    )
    outputs = (Output("CONDITIONING"),)

    def run(self, conditioning: list, mask: Any, strength: float, set_cond_area: str) -> list[list[Any]]:
        import torch

        if not torch.is_tensor(mask):
            raise ConditioningInputError(f"mask: expected a MASK tensor, got {type(mask).__name__}")
        if mask.ndim < 3:
            mask = mask.unsqueeze(0)
        out = _entries(conditioning, "conditioning")
        for entry in out:
            entry[1]["mask"] = mask
            entry[1]["set_area_to_bounds"] = set_cond_area != "default"
            entry[1]["mask_strength"] = strength
        return out


class ConditioningZeroOut(Node):
    display_name = "ConditioningZeroOut"
    category = "advanced/conditioning"
    description = "Replaces the embeddings (and pooled output) by zeros: an 'empty' conditioning."
    inputs = (Input("conditioning", "CONDITIONING"),)
    outputs = (Output("CONDITIONING"),)

    def run(self, conditioning: list) -> list[list[Any]]:
        import torch

        out = _entries(conditioning, "conditioning")
        for entry in out:
            entry[0] = torch.zeros_like(entry[0])
            pooled = entry[1].get("pooled_output")
            if pooled is not None:
                entry[1]["pooled_output"] = torch.zeros_like(pooled)
        return out


NODES = [
    CLIPTextEncode,
    CLIPTextEncodeSDXL,
    CLIPTextEncodeSDXLRefiner,
    CLIPSetLastLayer,
    ConditioningCombine,
    ConditioningSetArea,
    ConditioningSetMask,
    ConditioningZeroOut,
]
