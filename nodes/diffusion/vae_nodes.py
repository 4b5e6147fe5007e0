"""VAE nodes: latents <-> images (ComfyUI's VAEDecode, VAEEncode, VAEEncodeForInpaint, VAEDecodeTiled).

The VAE value (:class:`nodes.diffusion.types.VAEModel`) does the tensor work; these nodes
check their inputs, so a wrong wire or a size mismatch names the input at fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import estimates as est
from ..api import Estimate, Input, Int, Node, Output

if TYPE_CHECKING:
    import torch


def _latent(name: str, value: Any) -> torch.Tensor:
    import torch

    if not isinstance(value, dict) or not torch.is_tensor(value.get("samples")):
        raise ValueError(f"input '{name}' is not a LATENT (a dict with a 'samples' tensor)")
    return value["samples"]


def _image(name: str, value: Any) -> torch.Tensor:
    import torch

    if not torch.is_tensor(value) or value.dim() != 4 or value.shape[-1] not in (1, 3, 4):
        shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
        raise ValueError(f"input '{name}' is not an IMAGE ([batch, height, width, channels]); got {shape}")
    return value[..., :3] if value.shape[-1] == 4 else (value.expand(-1, -1, -1, 3) if value.shape[-1] == 1 else value)


def _vae(value: Any) -> Any:
    if not hasattr(value, "decode") or not hasattr(value, "encode"):
        raise ValueError("input 'vae' is not a VAE")
    return value


class VAEDecode(Node):
    display_name = "VAE Decode"
    category = "latent"
    description = "Decodes latents into images with the VAE."
    inputs = (
        Input("samples", "LATENT", tooltip="The latent to decode."),
        Input("vae", "VAE", tooltip="The VAE that made (or matches) the latent."),
    )
    outputs = (Output("IMAGE", tooltip="The decoded image."),)

    @classmethod
    def estimate(cls, samples: Any = None) -> Estimate | None:
        # the whole batch is decoded at once: the image plus the decoder's full-resolution work
        info = est.tensor(samples, 4)
        if info is None:
            return None
        b, _, h, w = info.shape
        shape = (b, h * est.VAE_FACTOR, w * est.VAE_FACTOR, 3)
        work = b * shape[1] * shape[2] * est.VAE_WORK_PER_PIXEL
        return est.new_tensor(shape, "samples", f"decoding to {est.describe('image', shape)}", work)

    def run(self, samples: dict, vae: Any) -> tuple:
        return (_vae(vae).decode(_latent("samples", samples)),)

    @classmethod
    def run_batch(cls, calls: list[dict[str, Any]]) -> list[Any] | None:
        """Several prompts' latents decoded at once (``--batch-prompts``)."""
        from .batch_sampling import decode_batch

        return decode_batch(calls)


class VAEDecodeTiled(Node):
    display_name = "VAE Decode (Tiled)"
    category = "_for_testing"
    description = "Decodes latents tile by tile to bound memory on large images."
    inputs = (
        Input("samples", "LATENT"),
        Input("vae", "VAE"),
        Int("tile_size", 512, min=64, max=4096, step=32),
        Int("overlap", 64, min=0, max=4096, step=32),
        # Video VAEs only; accepted so newer ComfyUI prompts validate, ignored for images.
        Int("temporal_size", 64, min=8, max=4096, step=4, optional=True),
        Int("temporal_overlap", 8, min=4, max=4096, step=4, optional=True),
    )
    outputs = (Output("IMAGE"),)

    @classmethod
    def estimate(cls, samples: Any = None) -> Estimate | None:
        info = est.tensor(samples, 4)  # tiles bound the work; the image itself is whole
        if info is None:
            return None
        b, _, h, w = info.shape
        shape = (b, h * est.VAE_FACTOR, w * est.VAE_FACTOR, 3)
        return est.new_tensor(shape, "samples", est.describe("image", shape))

    def run(
        self, samples: dict, vae: Any, tile_size: int, overlap: int, temporal_size: int = 64, temporal_overlap: int = 8
    ) -> tuple:
        if overlap >= tile_size // 2:
            overlap = tile_size // 4  # ComfyUI's rule: keep tiles mostly unique
        return (_vae(vae).decode_tiled(_latent("samples", samples), tile_size, overlap),)


class VAEEncode(Node):
    display_name = "VAE Encode"
    category = "latent"
    description = "Encodes images into latents with the VAE (image-to-image)."
    inputs = (Input("pixels", "IMAGE"), Input("vae", "VAE"))
    outputs = (Output("LATENT"),)

    @classmethod
    def estimate(cls, pixels: Any = None) -> Estimate | None:
        info = est.tensor(pixels, 4)
        if info is None:
            return None
        b, h, w, _ = info.shape
        shape = (b, 4, h // est.VAE_FACTOR, w // est.VAE_FACTOR)
        return est.new_tensor(
            shape, "pixels", f"encoding {est.describe('image', info.shape)}", b * h * w * est.VAE_WORK_PER_PIXEL
        )

    def run(self, pixels: Any, vae: Any) -> tuple:
        return ({"samples": _vae(vae).encode(_image("pixels", pixels))},)


class VAEEncodeForInpaint(Node):
    display_name = "VAE Encode (for Inpainting)"
    category = "latent/inpaint"
    description = (
        "Encodes images for inpainting: the masked area is greyed out before encoding and "
        "becomes the latent's noise mask (grown by grow_mask_by pixels)."
    )
    inputs = (
        Input("pixels", "IMAGE"),
        Input("vae", "VAE"),
        Input("mask", "MASK"),
        Int("grow_mask_by", 6, min=0, max=64),
    )
    outputs = (Output("LATENT"),)

    def run(self, pixels: Any, vae: Any, mask: Any, grow_mask_by: int) -> tuple:
        import torch
        import torch.nn.functional as F

        vae = _vae(vae)
        pixels = _image("pixels", pixels).clone()
        if not torch.is_tensor(mask) or mask.dim() not in (2, 3):
            raise ValueError("input 'mask' is not a MASK ([batch, height, width] or [height, width])")
        down = int(getattr(vae, "downscale", 8))
        h, w = (pixels.shape[1] // down) * down, (pixels.shape[2] // down) * down
        if h == 0 or w == 0:
            raise ValueError(
                f"input 'pixels' is {pixels.shape[2]}x{pixels.shape[1]}, smaller than one {down}x{down} latent cell"
            )
        m = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
        m = F.interpolate(m, size=(pixels.shape[1], pixels.shape[2]), mode="bilinear", align_corners=False)
        pixels, m = pixels[:, :h, :w, :], m[:, :, :h, :w]
        if grow_mask_by > 0:
            kernel = torch.ones((1, 1, grow_mask_by, grow_mask_by))
            pad = grow_mask_by // 2
            grown = F.conv2d(m.round(), kernel, padding=pad).clamp(0, 1)[:, :, :h, :w]
        else:
            grown = m
        keep = (1.0 - m.round()).permute(0, 2, 3, 1)
        if keep.shape[0] != pixels.shape[0]:
            keep = keep[:1].expand(pixels.shape[0], -1, -1, -1)
        pixels = (pixels - 0.5) * keep + 0.5
        return ({"samples": vae.encode(pixels), "noise_mask": grown},)


NODES = [VAEDecode, VAEEncode, VAEEncodeForInpaint, VAEDecodeTiled]
