"""The upscale networks, written from their papers (imports torch: load it only to build a model).

* **RRDBNet**: Xintao Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial
  Networks", ECCV Workshops 2018 (arXiv:1809.00219), section 3.1: a first convolution, a trunk of
  Residual-in-Residual Dense Blocks (three dense blocks of five 3x3 convolutions each, every
  convolution seeing the block input and all earlier outputs, LeakyReLU 0.2, residuals scaled by
  0.2) closed by a convolution and a long skip connection, then nearest-neighbour x2 upsampling
  stages each followed by a convolution, and two last convolutions. Real-ESRGAN (Wang et al.,
  "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data", ICCVW 2021,
  arXiv:2107.10833, section 3.3) keeps the network and, for x2 and x1, pixel-unshuffles the input
  first so the same x4 trunk serves every scale.
* **SRVGGNetCompact**: Real-ESRGAN's compact model: a plain stack of 3x3 convolutions with
  per-channel PReLU, whose last convolution makes ``scale**2`` sub-pixels per image channel
  (pixel shuffle), added to a nearest-neighbour enlargement of the input, so the network learns
  only the residual.

Parameter names follow BasicSR's (:func:`.detect.canonical_key` maps ESRGAN's onto them), so a
state dict loads with ``strict=True`` and any missing or extra tensor is reported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .detect import UpscaleSpec

_SLOPE = 0.2  # LeakyReLU's negative slope in ESRGAN
_RESIDUAL = 0.2  # how much of a dense block's (and an RRDB's) output is added to its input


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class DenseBlock(nn.Module):
    """Five convolutions with dense connections; conv1..conv4 add ``growth`` channels each."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.conv1 = _conv(features, growth)
        self.conv2 = _conv(features + growth, growth)
        self.conv3 = _conv(features + 2 * growth, growth)
        self.conv4 = _conv(features + 3 * growth, growth)
        self.conv5 = _conv(features + 4 * growth, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            seen.append(F.leaky_relu(conv(torch.cat(seen, 1)), _SLOPE))
        return x + _RESIDUAL * self.conv5(torch.cat(seen, 1))


class RRDB(nn.Module):
    """Three dense blocks in a row, the whole again a scaled residual (residual in residual)."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.rdb1 = DenseBlock(features, growth)
        self.rdb2 = DenseBlock(features, growth)
        self.rdb3 = DenseBlock(features, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + _RESIDUAL * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    def __init__(self, spec: UpscaleSpec) -> None:
        super().__init__()
        f = spec.features
        self.unshuffle = spec.unshuffle
        self.conv_first = _conv(spec.in_channels * spec.unshuffle**2, f)
        self.body = nn.Sequential(*(RRDB(f, spec.growth) for _ in range(spec.blocks)))
        self.conv_body = _conv(f, f)
        self.ups = [f"conv_up{i + 1}" for i in range(spec.upsamples)]
        for name in self.ups:
            self.add_module(name, _conv(f, f))
        self.conv_hr = _conv(f, f)
        self.conv_last = _conv(f, spec.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for name in self.ups:
            feat = F.leaky_relu(getattr(self, name)(F.interpolate(feat, scale_factor=2, mode="nearest")), _SLOPE)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), _SLOPE))


class SRVGGNetCompact(nn.Module):
    def __init__(self, spec: UpscaleSpec) -> None:
        super().__init__()
        f, s = spec.features, spec.scale
        layers: list[nn.Module] = [_conv(spec.in_channels, f), nn.PReLU(f)]
        for _ in range(spec.blocks):
            layers += [_conv(f, f), nn.PReLU(f)]
        layers.append(_conv(f, spec.out_channels * s * s))
        self.body = nn.Sequential(*layers)
        self.scale = s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.pixel_shuffle(self.body(x), self.scale)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def build(spec: UpscaleSpec) -> nn.Module:
    """The network ``spec`` describes, with fresh parameters (on torch's current default device)."""
    if spec.architecture == "RRDBNet":
        return RRDBNet(spec)
    return SRVGGNetCompact(spec)
