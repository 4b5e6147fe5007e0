"""Live previews: a cheap linear latent-to-RGB approximation, encoded as JPEG.

Decoding with the VAE every step would cost more than the step itself; a 4x3 matrix per
model family gets a recognisable image from the model's clean-latent estimate at latent
resolution for the price of one small matmul. The factors are least-squares fits of RGB
against latents published for the SD1/SD2 and SDXL VAEs (the ones ComfyUI's previewer
uses); a MODEL whose latent format brings its own factors wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: family -> (factors: 4 rows of RGB, bias RGB); inputs are *scaled* latents (what the UNet sees).
RGB_FACTORS: dict[str, tuple[tuple[tuple[float, float, float], ...], tuple[float, float, float]]] = {
    "sd1": (
        ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177)),
        (0.0, 0.0, 0.0),
    ),
    "sdxl": (
        ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188)),
        (0.1084, -0.0175, -0.0011),
    ),
}
RGB_FACTORS["sd2"] = RGB_FACTORS["sd1"]

#: longest preview side in pixels; larger latents are downscaled before encoding
MAX_PREVIEW_SIZE = 512


@lru_cache(maxsize=16)
def _factors(family: str, factors: Any, bias: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The [C, 3] matrix and [3] bias for a latent format, built once."""
    import torch

    if factors is None:
        factors, default_bias = RGB_FACTORS.get(family, RGB_FACTORS["sd1"])
        bias = bias if bias is not None else default_bias
    weights = torch.tensor(factors, dtype=torch.float32)
    offset = torch.tensor(bias if bias is not None else (0.0, 0.0, 0.0), dtype=torch.float32)
    # fold ((rgb + 1) * 127.5) into the matrix so one addmm does all the arithmetic
    return weights * 127.5, (offset + 1.0) * 127.5


def latent_to_rgb(latent: torch.Tensor, fmt: Mapping[str, Any] | None = None) -> torch.Tensor:
    """The first image of a scaled latent batch [B, C, h, w] as uint8 [h, w, 3] (CPU)."""
    import torch

    fmt = fmt or {}
    factors = fmt.get("rgb_factors")
    bias = fmt.get("rgb_bias")
    weights, offset = _factors(str(fmt.get("family", "sd1")), _frozen(factors), _frozen(bias))
    x = latent[0].detach().float().cpu()
    channels, height, width = x.shape
    if channels != weights.shape[0]:  # an unknown latent layout: show the first channels as grey/RGB
        rgb = x[:3] if channels >= 3 else x[:1].expand(3, -1, -1)
        return ((rgb.permute(1, 2, 0) + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)
    rgb = torch.addmm(offset, x.reshape(channels, -1).t(), weights)
    return rgb.clamp_(0, 255).to(torch.uint8).reshape(height, width, 3)


def _frozen(value: Any) -> Any:
    if value is None:
        return None
    return tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in value)


def preview_jpeg(latent: torch.Tensor, fmt: Mapping[str, Any] | None = None, quality: int = 85) -> bytes:
    """JPEG bytes of :func:`latent_to_rgb`, downscaled to ``fmt["max_size"]`` (``--preview-size``;
    default :data:`MAX_PREVIEW_SIZE`)."""
    import io

    from PIL import Image

    image = Image.fromarray(latent_to_rgb(latent, fmt).numpy())
    try:
        limit = max(int((fmt or {}).get("max_size") or MAX_PREVIEW_SIZE), 1)
    except (TypeError, ValueError):
        limit = MAX_PREVIEW_SIZE
    if max(image.size) > limit:
        image.thumbnail((limit, limit))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
