"""Which upscale network a state dict holds, told from its key names and tensor shapes alone.

Published upscale models are bare state dicts: no config says the network, its width, depth or
scale. Those follow from the keys (which layers exist, how many blocks) and the shapes (channel
counts), so a file is recognised from its header without reading its tensors, and a file of
another network is refused before anything is built. No torch here.

Recognised layouts:

* **RRDBNet, ESRGAN's original layout** (``model.0.weight``, ``model.1.sub.N.RDB1.conv1.0.weight``,
  ...): the trunk is one ``nn.Sequential`` whose indices shift with the number of upsampling
  stages, so the scale is read from the index of the last convolution.
* **RRDBNet, BasicSR's layout** (``conv_first``, ``body.N.rdb1.conv1``, ``conv_body``,
  ``conv_upK``, ``conv_hr``, ``conv_last``): Real-ESRGAN's models. Real-ESRGAN's x2 and x1 models
  are its x4 network fed a pixel-unshuffled image (4 or 16 times the input channels), which the
  first convolution's input width gives away.
* **SRVGGNetCompact** (``body.N.weight``: convolutions at even indices, PReLU slopes at odd
  ones): Real-ESRGAN's compact models such as realesr-general-x4v3; the scale is the square root
  of the last convolution's channels over the image channels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from nodes.diffusion.detect import ModelFileError

SUPPORTED = (
    "ESRGAN / Real-ESRGAN RRDBNet (ESRGAN's 'model.N' key layout and BasicSR's "
    "'conv_first/body.N.rdb1' layout; x1, x2, x4, x8) and Real-ESRGAN SRVGGNetCompact "
    "('body.N' layout, e.g. realesr-general-x4v3)"
)

Shapes = Mapping[str, tuple[int, ...]]


class UnsupportedUpscaleModel(ModelFileError):
    """The file is not one of the upscale networks Weft implements (see :data:`SUPPORTED`)."""


@dataclass(frozen=True)
class UpscaleSpec:
    """A network and its sizes, enough to build it and to size its input and output."""

    architecture: str  # "RRDBNet" or "SRVGGNetCompact"
    layout: str  # "esrgan" (model.N), "basicsr" (conv_first/body) or "compact" (body.N)
    scale: int
    in_channels: int
    out_channels: int
    features: int
    blocks: int  # RRDB blocks, or the compact network's inner convolutions
    growth: int = 0  # channels each dense-block convolution adds (RRDBNet)
    upsamples: int = 0  # nearest x2 + convolution stages (RRDBNet)
    unshuffle: int = 1  # the input is pixel-unshuffled by this factor first (Real-ESRGAN x2: 2, x1: 4)

    @property
    def pad_to(self) -> tuple[int, int]:
        """(multiple, minimum) an input side is padded to: spandrel's size requirements, which
        ComfyUI's results carry (pixel-unshuffled RRDBNets take multiples of 4, at least 4 px)."""
        if self.architecture != "RRDBNet":
            return 1, 0
        return (4, 4) if self.unshuffle > 1 else (1, 2)

    def describe(self) -> str:
        size = f"{self.features} features, {self.blocks} blocks"
        return f"{self.architecture} x{self.scale} ({size}, {self.in_channels}->{self.out_channels} channels)"


def strip_wrapper(keys: Mapping[str, object]) -> str:
    """The prefix every key carries when the model was saved wrapped (``module.`` from DataParallel)."""
    return "module." if keys and all(k.startswith("module.") for k in keys) else ""


def detect(shapes: Shapes) -> UpscaleSpec:
    """The network of a state dict given ``{key: shape}``; :class:`UnsupportedUpscaleModel` otherwise."""
    if "model.0.weight" in shapes and "model.1.sub.0.RDB1.conv1.0.weight" in shapes:
        return _esrgan(shapes)
    if "conv_first.weight" in shapes and "body.0.rdb1.conv1.weight" in shapes:
        return _basicsr(shapes)
    if len(shapes.get("body.0.weight", ())) == 4 and len(shapes.get("body.1.weight", ())) == 1:
        return _compact(shapes)
    sample = ", ".join(sorted(shapes)[:4]) or "no tensors"
    raise UnsupportedUpscaleModel(f"not a supported upscale model (keys such as {sample}). Supported: {SUPPORTED}")


def _count(shapes: Shapes, pattern: str) -> int:
    """How many consecutive indices ``0, 1, ...`` fill the ``{}`` of ``pattern`` in the keys."""
    n = 0
    while pattern.format(n) in shapes:
        n += 1
    return n


def _unshuffle(in_channels: int, out_channels: int) -> int:
    """Real-ESRGAN's pixel-unshuffle factor, from how many more channels go in than come out."""
    if in_channels == out_channels * 4:
        return 2
    if in_channels == out_channels * 16:
        return 4
    return 1


def _rrdb(shapes: Shapes, layout: str, first: str, last: str, rdb: str, blocks: int, upsamples: int) -> UpscaleSpec:
    in_channels, out_channels = shapes[first][1], shapes[last][0]
    unshuffle = _unshuffle(in_channels, out_channels)
    if 2**upsamples < unshuffle:
        raise UnsupportedUpscaleModel(
            f"RRDBNet with {in_channels} input channels but only {upsamples} upsampling stages "
            f"would shrink the image. Supported: {SUPPORTED}"
        )
    return UpscaleSpec(
        architecture="RRDBNet",
        layout=layout,
        scale=2**upsamples // unshuffle,
        in_channels=in_channels // unshuffle**2,
        out_channels=out_channels,
        features=shapes[first][0],
        blocks=blocks,
        growth=shapes[rdb][0],
        upsamples=upsamples,
        unshuffle=unshuffle,
    )


def _esrgan(shapes: Shapes) -> UpscaleSpec:
    blocks = _count(shapes, "model.1.sub.{}.RDB1.conv1.0.weight")
    top = sorted(int(m.group(1)) for k in shapes if (m := re.fullmatch(r"model\.(\d+)\.weight", k)))
    upsamples, remainder = divmod(top[-1] - 4, 3)
    expected = [0, *(3 + 3 * i for i in range(max(upsamples, 0))), 2 + 3 * upsamples, 4 + 3 * upsamples]
    if remainder or upsamples < 0 or top != expected:
        raise UnsupportedUpscaleModel(
            f"ESRGAN-layout file with convolutions at model.{top} does not follow the RRDBNet layout "
            f"(nearest-neighbour upsampling stages). Supported: {SUPPORTED}"
        )
    last = f"model.{top[-1]}.weight"
    return _rrdb(shapes, "esrgan", "model.0.weight", last, "model.1.sub.0.RDB1.conv1.0.weight", blocks, upsamples)


def _basicsr(shapes: Shapes) -> UpscaleSpec:
    blocks = _count(shapes, "body.{}.rdb1.conv1.weight")
    upsamples = 0
    while f"conv_up{upsamples + 1}.weight" in shapes:
        upsamples += 1
    if "conv_last.weight" not in shapes:
        raise UnsupportedUpscaleModel(f"RRDBNet-like file without conv_last. Supported: {SUPPORTED}")
    return _rrdb(
        shapes, "basicsr", "conv_first.weight", "conv_last.weight", "body.0.rdb1.conv1.weight", blocks, upsamples
    )


def _compact(shapes: Shapes) -> UpscaleSpec:
    last = max(int(m.group(1)) for k in shapes if (m := re.fullmatch(r"body\.(\d+)\.weight", k)))
    in_channels, features = shapes["body.0.weight"][1], shapes["body.0.weight"][0]
    out = shapes[f"body.{last}.weight"][0]
    scale = math.isqrt(out // in_channels) if out % in_channels == 0 else 0
    if last % 2 or last < 2 or scale * scale * in_channels != out:
        raise UnsupportedUpscaleModel(
            f"'body.N' file ending at body.{last} with {out} channels is not an SRVGGNetCompact with "
            f"PReLU activations. Supported: {SUPPORTED}"
        )
    return UpscaleSpec(
        architecture="SRVGGNetCompact",
        layout="compact",
        scale=scale,
        in_channels=in_channels,
        out_channels=in_channels,
        features=features,
        blocks=last // 2 - 1,
    )


_ESRGAN_BLOCK = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(\w+)")
_ESRGAN_TOP = re.compile(r"model\.(\d+)\.(\w+)")


def canonical_key(spec: UpscaleSpec, key: str) -> str:
    """The name :mod:`.architectures` gives the tensor a file calls ``key`` (BasicSR's names).

    ESRGAN's layout is renamed: ``model.0`` is ``conv_first``, the ``model.1.sub`` blocks are
    ``body``, the convolution after them ``conv_body``, and the trunk's later convolutions
    ``conv_up1..``, ``conv_hr`` and ``conv_last``. Unknown keys are kept, so loading reports them.
    """
    if spec.layout != "esrgan":
        return key
    if m := _ESRGAN_BLOCK.fullmatch(key):
        return f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"
    if m := re.fullmatch(r"model\.1\.sub\.(\d+)\.(\w+)", key):
        return f"conv_body.{m[2]}" if int(m[1]) == spec.blocks else key
    if m := _ESRGAN_TOP.fullmatch(key):
        index, n = int(m[1]), spec.upsamples
        names = {0: "conv_first", 2 + 3 * n: "conv_hr", 4 + 3 * n: "conv_last"}
        names.update({3 + 3 * i: f"conv_up{i + 1}" for i in range(n)})
        if index in names:
            return f"{names[index]}.{m[2]}"
    return key
