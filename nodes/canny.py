"""Canny edge detection in plain torch (ComfyUI's ``Canny`` node, which calls kornia).

Canny's algorithm (J. Canny, 1986), with the parameters ComfyUI gets from kornia's defaults:

1. luminance (ITU-R 601 weights) of RGB input;
2. Gaussian smoothing, 5x5, sigma 1 pixel, mirrored borders;
3. Sobel gradients (unnormalised, replicated borders), magnitude ``sqrt(gx^2 + gy^2 + eps)``;
4. non-maximum suppression: the gradient direction is rounded to one of 8 compass
   directions and a pixel survives only if its magnitude is strictly above both neighbours
   along that direction (neighbours outside the image count as 0);
5. double threshold: above ``high`` is a strong edge, above ``low`` a weak one;
6. hysteresis: weak pixels touching a strong one (8-neighbourhood) become strong, repeated
   until nothing changes; weak pixels left over are dropped.

Thresholds apply to the gradient magnitude of 0..1 images (ComfyUI's 0.4/0.8 defaults).
No kornia/OpenCV/torchvision: the whole detector is a handful of convolutions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .api import Float, Input, Node, Output
from .tensors import image_input

if TYPE_CHECKING:
    import torch

#: neighbour offsets (dy, dx) of the 8 directions at 0, 45, ... 315 degrees (y grows downwards)
DIRECTIONS = [(round(math.sin(math.radians(45 * k))), round(math.cos(math.radians(45 * k)))) for k in range(8)]


def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    import torch

    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _neighbour_kernels(with_centre: bool) -> torch.Tensor:
    """8 3x3 kernels: ``centre - neighbour_k`` (NMS) or just ``neighbour_k`` (hysteresis)."""
    import torch

    kernels = torch.zeros(8, 1, 3, 3)
    for k, (dy, dx) in enumerate(DIRECTIONS):
        kernels[k, 0, 1 + dy, 1 + dx] = -1.0 if with_centre else 1.0
        if with_centre:
            kernels[k, 0, 1, 1] = 1.0
    return kernels


def canny_edges(
    image: torch.Tensor,
    low_threshold: float,
    high_threshold: float,
    *,
    blur_size: int = 5,
    blur_sigma: float = 1.0,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(magnitude after NMS, edges)`` of ``[B, C, H, W]`` images (C = 1 or 3), both ``[B, 1, H, W]``."""
    import torch
    import torch.nn.functional as F

    if low_threshold > high_threshold:
        raise ValueError(f"low_threshold ({low_threshold}) must not be above high_threshold ({high_threshold})")
    x = image.float()
    if x.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        x = (x * weights).sum(dim=1, keepdim=True)
    elif x.shape[1] != 1:
        x = x[:, :3].mean(dim=1, keepdim=True)
    # 2. separable Gaussian smoothing
    g = _gaussian_1d(blur_size, blur_sigma).to(x.device)
    r = blur_size // 2
    x = F.pad(x, (r, r, r, r), mode="reflect" if r < min(x.shape[-2:]) else "replicate")
    x = F.conv2d(F.conv2d(x, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    # 3. Sobel gradients
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(padded, sobel.t().contiguous().view(1, 1, 3, 3))
    magnitude = torch.sqrt(gx * gx + gy * gy + eps)
    # 4. non-maximum suppression along the rounded gradient direction (both senses)
    angle = torch.round(torch.rad2deg(torch.atan2(gy, gx)) / 45.0) * 45.0
    forward = torch.remainder(angle / 45.0, 8).long()
    backward = torch.remainder(angle / 45.0 + 4, 8).long()
    differences = F.conv2d(magnitude, _neighbour_kernels(True).to(x.device), padding=1)
    is_max = torch.minimum(differences.gather(1, forward), differences.gather(1, backward)) > 0.0
    magnitude = magnitude * is_max
    # 5. double threshold: 1 strong, 0.5 weak
    edges = (magnitude > low_threshold).float() * 0.5 + (magnitude > high_threshold).float() * 0.5
    # 6. hysteresis
    neighbours = _neighbour_kernels(False).to(x.device)
    weak = edges == 0.5
    strong = edges == 1.0
    while True:
        touching = (F.conv2d(strong.float(), neighbours, padding=1) == 1.0).any(dim=1, keepdim=True)
        grown = strong | (weak & touching)
        if torch.equal(grown, strong):
            break
        strong = grown
    return magnitude, strong.float()


class Canny(Node):
    category = "image/preprocessors"
    description = (
        "Canny edge detection: white edges on black, for edge ControlNets. Thresholds are on the "
        "gradient strength of the 0..1 image (weak edges are kept where they touch strong ones)."
    )
    inputs = (
        Input("image", "IMAGE"),
        Float("low_threshold", 0.4, min=0.01, max=0.99, step=0.01),
        Float("high_threshold", 0.8, min=0.01, max=0.99, step=0.01),
    )
    outputs = (Output("IMAGE"),)

    def run(self, image: Any, low_threshold: float, high_threshold: float) -> tuple:
        image = image_input("image", image)
        try:
            _, edges = canny_edges(image[..., :3].movedim(-1, 1), low_threshold, high_threshold)
        except ValueError as exc:
            raise ValueError(f"input 'low_threshold': {exc}") from exc
        return (edges.expand(-1, 3, -1, -1).movedim(1, -1).contiguous(),)


NODES = [Canny]
