"""VAEEncodeTiled: encoding images tile by tile (ComfyUI's node; VAEDecodeTiled is in vae_nodes).

Peak memory follows the tile rather than the image, which is what lets large images encode on
small GPUs. The tiles overlap and their latents are blended linearly over the overlap
(:meth:`nodes.diffusion.types.VAEModel.encode_tiled`), so seams do not show.
"""

from __future__ import annotations

from typing import Any

from .api import Input, Int, Node, Output
from .tensors import image_input


class VAEEncodeTiled(Node):
    display_name = "VAE Encode (Tiled)"
    category = "_for_testing"
    description = "Encodes images into latents tile by tile (pixels), to bound memory on large images."
    inputs = (
        Input("pixels", "IMAGE"),
        Input("vae", "VAE"),
        Int("tile_size", 512, min=64, max=4096, step=64),
        Int("overlap", 64, min=0, max=4096, step=32),
        # Video VAEs only; accepted so ComfyUI prompts validate, ignored for images (as in VAEDecodeTiled).
        Int(
            "temporal_size",
            64,
            min=8,
            max=4096,
            step=4,
            optional=True,
            tooltip="Only used for video VAEs: Amount of frames to encode at a time.",
        ),
        Int(
            "temporal_overlap",
            8,
            min=4,
            max=4096,
            step=4,
            optional=True,
            tooltip="Only used for video VAEs: Amount of frames to overlap.",
        ),
    )
    outputs = (Output("LATENT"),)

    def run(
        self, pixels: Any, vae: Any, tile_size: int, overlap: int, temporal_size: int = 64, temporal_overlap: int = 8
    ) -> tuple:
        if not hasattr(vae, "encode_tiled"):
            raise ValueError("input 'vae' is not a VAE")
        pixels = image_input("pixels", pixels)
        return ({"samples": vae.encode_tiled(pixels[..., :3], tile_size, overlap)},)


NODES = [VAEEncodeTiled]
