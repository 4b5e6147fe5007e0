"""``VAE``: the autoencoder value, with whole-image and tiled encode/decode.

Like every model value it is a handle (:mod:`.types` says why): the weights belong to the
model manager. Tiling keeps peak memory to one tile for large images, blending the tiles'
overlaps so seams do not show.

torch is imported inside methods only; importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .model_manager import ModuleHandle
    from .types import LatentFormat

#: what every model value reports to the output cache: a handle's size, not its weights' (see .types)
HANDLE_SIZE = 1024


class VAEModel:
    """``VAE``: a diffusers ``AutoencoderKL`` and its latent format.

    :meth:`encode` takes IMAGE ``[B, H, W, C]`` 0..1 and returns raw latents (the posterior
    mean, so encoding is deterministic); :meth:`decode` the reverse, always float32 CPU.
    Sizes not divisible by :attr:`downscale` are cropped down to a multiple before encoding.
    """

    TYPE = "VAE"

    def __init__(
        self,
        handle: ModuleHandle,
        *,
        scaling_factor: float,
        shift_factor: float = 0.0,
        latent_channels: int = 4,
        downscale: int = 8,
        name: str = "",
    ) -> None:
        self.handle = handle
        self.scaling_factor = scaling_factor
        self.shift_factor = shift_factor
        self.latent_channels = latent_channels
        self.downscale = downscale
        self.name = name

    def __weft_cache_size__(self) -> int:
        return HANDLE_SIZE

    def __repr__(self) -> str:
        return f"<VAE {self.name!r} scale={self.scaling_factor}>"

    @property
    def latent_format(self) -> LatentFormat:
        from .types import LatentFormat

        return LatentFormat(self.latent_channels, self.scaling_factor, self.shift_factor)

    # ComfyUI's names for the same facts, for plugins
    @property
    def downscale_ratio(self) -> int:
        return self.downscale

    @property
    def upscale_ratio(self) -> int:
        return self.downscale

    def spacial_compression_decode(self) -> int:
        return self.downscale

    def spacial_compression_encode(self) -> int:
        return self.downscale

    @property
    def device(self) -> torch.device:
        return self.handle.device

    @property
    def dtype(self) -> torch.dtype:
        return self.handle.compute_dtype

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """IMAGE ``[B, H, W, C]`` 0..1 -> raw latents ``[B, 4, H/8, W/8]`` (float32, CPU)."""
        import torch

        vae = self.handle.on_device()
        image = _crop_to_multiple(image[..., :3], self.downscale)
        x = image.movedim(-1, 1).to(device=self.device, dtype=self.dtype) * 2.0 - 1.0
        with torch.no_grad():
            latents = vae.encode(x).latent_dist.mean
        return latents.float().cpu()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw latents ``[B, 4, h, w]`` -> IMAGE ``[B, 8h, 8w, 3]`` 0..1 (float32, CPU)."""
        import torch

        vae = self.handle.on_device()
        z = latents.to(device=self.device, dtype=self.dtype)
        with torch.no_grad():
            pixels = vae.decode(z, return_dict=False)[0]
        return ((pixels.float() + 1.0) / 2.0).clamp(0.0, 1.0).movedim(1, -1).cpu()

    def decode_tiled(
        self,
        latents: torch.Tensor,
        tile_size: int = 512,
        overlap: int | None = None,
        *,
        tile_x: int | None = None,
        tile_y: int | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """Like :meth:`decode`, tile by tile (sizes in image pixels), blending the overlaps.

        Peak memory follows the tile, not the image, which is what makes large decodes fit.
        ``tile_x``/``tile_y`` (latent units, with ``overlap`` then in latent units too) is
        ComfyUI's signature, for plugins; square tiles of the larger size are used.
        """
        f = self.downscale
        if tile_x is not None or tile_y is not None:
            tile_size = max(tile_x or 0, tile_y or 0) * f
            overlap = (16 if overlap is None else overlap) * f
        elif overlap is None:
            overlap = 64
        tile, lap = max(tile_size // f, 2), max(min(overlap // f, tile_size // f // 2), 0)
        out = _tiled(latents, tile, lap, f, self.decode, out_channels=3, channels_last=True)
        return out

    def encode_tiled(
        self,
        image: torch.Tensor,
        tile_size: int = 512,
        overlap: int = 64,
        *,
        tile_x: int | None = None,
        tile_y: int | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """Like :meth:`encode`, tile by tile (sizes in image pixels), blending the overlaps.

        ``tile_x``/``tile_y`` (pixels) is ComfyUI's signature, for plugins.
        """
        f = self.downscale
        if tile_x is not None or tile_y is not None:
            tile_size = max(tile_x or 0, tile_y or 0)
        image = _crop_to_multiple(image[..., :3], f)
        pixels = image.movedim(-1, 1)
        tile, lap = max(tile_size // f * f, f * 2), max(min(overlap // f * f, tile_size // 2 // f * f), 0)

        def enc(chunk: torch.Tensor) -> torch.Tensor:
            return self.encode(chunk.movedim(1, -1))

        return _tiled(pixels, tile, lap, 1, enc, out_channels=self.latent_channels, channels_last=False, shrink=f)


def _crop_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = image.shape[1] // multiple * multiple, image.shape[2] // multiple * multiple
    if (h, w) == tuple(image.shape[1:3]):
        return image
    top, left = (image.shape[1] - h) // 2, (image.shape[2] - w) // 2
    return image[:, top : top + h, left : left + w]


def _tiled(
    x: torch.Tensor,
    tile: int,
    overlap: int,
    scale: int,
    fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    out_channels: int,
    channels_last: bool,
    shrink: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` to overlapping ``tile`` x ``tile`` windows of ``x [B, C, H, W]`` and blend.

    The output is ``scale`` times larger (decode) or ``shrink`` times smaller (encode); each
    window's contribution fades linearly over the overlap so seams do not show.
    """
    import torch

    batch, _, height, width = x.shape
    out_h, out_w = height * scale // shrink, width * scale // shrink
    out = torch.zeros(batch, out_channels, out_h, out_w)
    weight = torch.zeros(1, 1, out_h, out_w)
    stride = max(tile - overlap, 1)
    ys = list(range(0, max(height - overlap, 1), stride))
    xs = list(range(0, max(width - overlap, 1), stride))
    for y in ys:
        for x0 in xs:
            y0, x1 = min(y, max(height - tile, 0)), min(x0, max(width - tile, 0))
            window = x[:, :, y0 : y0 + tile, x1 : x1 + tile]
            result = fn(window)
            if channels_last:
                result = result.movedim(-1, 1)
            th, tw = result.shape[-2:]
            ramp = overlap * scale // shrink
            mask = torch.ones(1, 1, th, tw)
            if ramp > 0:
                fade = torch.linspace(0.0, 1.0, ramp + 2)[1:-1]
                if y0 > 0:
                    mask[:, :, :ramp, :] *= fade.view(1, 1, -1, 1)
                if y0 + tile < height:
                    mask[:, :, -ramp:, :] *= fade.flip(0).view(1, 1, -1, 1)
                if x1 > 0:
                    mask[:, :, :, :ramp] *= fade.view(1, 1, 1, -1)
                if x1 + tile < width:
                    mask[:, :, :, -ramp:] *= fade.flip(0).view(1, 1, 1, -1)
            oy, ox = y0 * scale // shrink, x1 * scale // shrink
            out[:, :, oy : oy + th, ox : ox + tw] += result.float().cpu() * mask
            weight[:, :, oy : oy + th, ox : ox + tw] += mask
    out = out / weight.clamp_min(1e-8)
    return out.movedim(1, -1) if channels_last else out
