"""UpscaleModelLoader and ImageUpscaleWithModel with ComfyUI's names, inputs, categories and types.

The loader reads ``models/upscale_models``; the upscale node runs the model over the image in
512-pixel tiles overlapping by 32 (halved on out-of-memory), as ComfyUI does, and clamps the
result to 0..1. Which networks load, and why Weft has its own: :mod:`nodes.upscale`.
"""

from __future__ import annotations

from typing import Any

from nodes.api import Estimate, Input, ModelFile, Node, Output

FOLDER = "upscale_models"


class UpscaleModelLoader(Node):
    display_name = "Load Upscale Model"
    category = "loaders"
    description = (
        "Loads an upscale model from models/upscale_models: ESRGAN / Real-ESRGAN (RRDBNet, x1-x8) "
        "or Real-ESRGAN's compact SRVGGNetCompact, as .safetensors or trusted .pth/.pt files."
    )
    inputs = (ModelFile("model_name", FOLDER),)
    outputs = (Output("UPSCALE_MODEL"),)

    @classmethod
    def fingerprint(cls, model_name: str = "", **_: Any) -> Any:
        from nodes.diffusion.model_files import file_fingerprint

        return file_fingerprint(FOLDER, model_name)

    def run(self, model_name: str) -> tuple[Any]:
        from nodes.diffusion.detect import ModelFileError
        from nodes.diffusion.model_files import model_file

        from .detect import UnsupportedUpscaleModel
        from .model import load_upscale_model

        path = model_file(FOLDER, model_name, "model_name")
        try:
            return (load_upscale_model(path, model_name),)
        except ModelFileError as exc:  # another network, an unreadable file, an untrusted pickle
            where = f" {path.name!r}" if isinstance(exc, UnsupportedUpscaleModel) else ""
            raise type(exc)(f"UpscaleModelLoader: model_name{where}: {exc}") from exc


class ImageUpscaleWithModel(Node):
    display_name = "Upscale Image (using Model)"
    category = "image/upscaling"
    description = (
        "Enlarges images with an upscale model (by the model's own factor), in overlapping 512-pixel "
        "tiles so large images fit in memory."
    )
    inputs = (Input("upscale_model", "UPSCALE_MODEL"), Input("image", "IMAGE"))
    outputs = (Output("IMAGE"),)

    @classmethod
    def estimate(cls, **inputs: Any) -> Estimate | None:
        """Unknown: the factor is in the model file, which estimates may not read (not the
        pass-through rule, which would call the output as large as the input)."""
        return None

    def run(self, upscale_model: Any, image: Any) -> tuple[Any]:
        from engine.context import current_context
        from nodes.tensors import image_input

        from .model import UpscaleModel, upscale_image

        if not isinstance(upscale_model, UpscaleModel):
            raise ValueError(
                "ImageUpscaleWithModel: input 'upscale_model' must be an UPSCALE_MODEL from "
                f"UpscaleModelLoader, got {type(upscale_model).__name__}"
            )
        image = image_input("image", image)
        if image.shape[-1] != upscale_model.input_channels:
            raise ValueError(
                f"ImageUpscaleWithModel: input 'image' has {image.shape[-1]} channels but the upscale model "
                f"{upscale_model.name!r} takes {upscale_model.input_channels}"
            )
        ctx = current_context()
        return (upscale_image(upscale_model, image, ctx.progress if ctx is not None else None),)


NODES = [UpscaleModelLoader, ImageUpscaleWithModel]
