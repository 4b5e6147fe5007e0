"""A node written in ComfyUI's classic contract, as an existing ComfyUI pack would ship it."""

import comfy.utils


class ExampleImageBrightness:
    """Multiplies an IMAGE by ``factor`` and clamps to 0..1, reporting progress per image."""

    CATEGORY = "example_pack/image"
    DESCRIPTION = "Brighten (factor > 1) or darken (factor < 1) an image."
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE",),
                "factor": ("FLOAT", {"default": 1.2, "min": 0.0, "max": 10.0, "step": 0.05}),
            }
        }

    def apply(self, image, factor):
        bar = comfy.utils.ProgressBar(image.shape[0])
        frames = []
        for frame in image:
            frames.append((frame * factor).clamp(0.0, 1.0))
            bar.update(1)
        import torch

        return (torch.stack(frames),)


NODE_CLASS_MAPPINGS = {"ExampleImageBrightness": ExampleImageBrightness}
NODE_DISPLAY_NAME_MAPPINGS = {"ExampleImageBrightness": "Image Brightness (example, classic)"}
