"""Image and text nodes in the classic contract: tensors in ComfyUI's [B, H, W, C] layout."""

import os

import comfy.model_management
import comfy.utils
import folder_paths
from comfy.comfy_types import IO


class ClassicImageInvert:
    CATEGORY = "tests/classic/image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"
    DESCRIPTION = "1 - image, step by step with a progress bar."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (IO.IMAGE,)}}

    def invert(self, image):
        bar = comfy.utils.ProgressBar(image.shape[0])
        out = []
        for frame in image:
            comfy.model_management.throw_exception_if_processing_interrupted()
            out.append(1.0 - frame)
            bar.update(1)
        import torch

        return (torch.stack(out),)


class ClassicSolidImage:
    CATEGORY = "tests/classic/image"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "width": ("INT", {"default": 8, "min": 1, "max": 4096}),
                "height": ("INT", {"default": 8, "min": 1, "max": 4096}),
                "value": ("FLOAT", {"default": 0.25, "min": 0.0, "max": 1.0, "step": 0.05}),
            }
        }

    def make(self, width, height, value):
        import torch

        image = torch.full((1, height, width, 3), float(value))
        mask = torch.ones((1, height, width))
        return (image, mask)


class ClassicImageStats:
    """An output node: shows the image's shape and mean in the UI, ComfyUI's {"ui", "result"}."""

    CATEGORY = "tests/classic/image"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "stats"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}, "optional": {"mask": ("MASK",)}}

    def stats(self, image, mask=None):
        b, h, w, c = image.shape
        text = f"{b}x{h}x{w}x{c} mean={float(image.mean()):.3f}"
        if mask is not None:
            text += f" mask={tuple(mask.shape)}"
        return {"ui": {"text": [text]}, "result": (text,)}


class ClassicUpscale:
    CATEGORY = "tests/classic/image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE",),
                "method": (["nearest-exact", "bilinear", "area", "bicubic", "lanczos"],),
                "width": ("INT", {"default": 16, "min": 1}),
                "height": ("INT", {"default": 16, "min": 1}),
            }
        }

    def upscale(self, image, method, width, height):
        samples = image.movedim(-1, 1)
        return (comfy.utils.common_upscale(samples, width, height, method, "disabled").movedim(1, -1),)


class ClassicTextFile:
    """Reads a text file from the input folder; IS_CHANGED is the file's modification time."""

    CATEGORY = "tests/classic/text"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "read"

    @classmethod
    def INPUT_TYPES(cls):
        folder = folder_paths.get_input_directory()
        files = sorted(f for f in os.listdir(folder) if f.endswith(".txt")) if os.path.isdir(folder) else []
        return {"required": {"file": (files or ["none.txt"],)}}

    @classmethod
    def IS_CHANGED(cls, file):
        path = folder_paths.get_annotated_filepath(file)
        return os.path.getmtime(path) if os.path.exists(path) else float("nan")

    @classmethod
    def VALIDATE_INPUTS(cls, file):
        if not folder_paths.exists_annotated_filepath(file):
            return f"Invalid text file: {file}"
        return True

    def read(self, file):
        with open(folder_paths.get_annotated_filepath(file), encoding="utf-8") as handle:
            return (handle.read(),)


class ClassicRepeatText:
    CATEGORY = "tests/classic/text"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "repeat"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text": ("STRING", {"multiline": True, "default": ""}),
                "times": ("INT", {"default": 2, "min": 0, "max": 100}),
            },
            "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"},
        }

    def repeat(self, text, times, unique_id=None, prompt=None):
        assert prompt is not None and unique_id in prompt
        return (text * times,)


NODE_CLASS_MAPPINGS = {
    "ClassicImageInvert": ClassicImageInvert,
    "ClassicSolidImage": ClassicSolidImage,
    "ClassicImageStats": ClassicImageStats,
    "ClassicUpscale": ClassicUpscale,
    "ClassicTextFile": ClassicTextFile,
    "ClassicRepeatText": ClassicRepeatText,
}
NODE_DISPLAY_NAME_MAPPINGS = {"ClassicImageInvert": "Invert Image (classic)"}
