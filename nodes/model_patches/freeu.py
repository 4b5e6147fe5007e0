"""FreeU: re-weighting the UNet decoder's backbone and skip features (ComfyUI's FreeU, FreeU_V2).

Si, Huang, Jiang, Liu, "FreeU: Free Lunch in Diffusion U-Net", CVPR 2024. Where the decoder
joins its hidden state ``h`` with an encoder skip connection, FreeU

* scales the first half of ``h``'s channels by ``b`` (the backbone carries denoising; V2 scales
  by ``1 + (b - 1) * m`` with ``m`` the per-image min-max normalised channel mean of ``h``, so
  the boost follows the structure), and
* scales the lowest frequencies of the skip features by ``s`` (a 2x2 block at the centre of
  their shifted 2-D spectrum), which damps the high-frequency detail the skips would impose.

``b1``/``s1`` apply where ``h`` has 4x the model's base channels (the lowest-resolution decoder
stage), ``b2``/``s2`` where it has 2x, as in the paper's code and ComfyUI (which choose by
channel count, not by block index as diffusers' ``enable_freeu`` does). ``b = s = 1`` changes
nothing. Implemented as a forward pre-hook on the decoder's resnets for each UNet call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Node, Output

from .unet_hooks import CallHooks, decoder_resnets

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.types import DiffusionModel, UNetCall

log = logging.getLogger("weft.freeu")


def fourier_filter(x: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """``x`` with the centred ``2*threshold`` square of its (shifted) 2-D spectrum scaled by ``scale``."""
    import torch

    spectrum = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    height, width = x.shape[-2:]
    cy, cx = height // 2, width // 2
    weights = torch.ones(x.shape[-2:], device=x.device)
    weights[max(cy - threshold, 0) : cy + threshold, max(cx - threshold, 0) : cx + threshold] = scale
    spectrum = spectrum * weights
    return torch.fft.ifftn(torch.fft.ifftshift(spectrum, dim=(-2, -1)), dim=(-2, -1)).real.to(x.dtype)


class FreeUHooks(CallHooks):
    """The MODEL wrapper of the FreeU nodes: ``version`` 1 (constant backbone factor) or 2 (structure-aware)."""

    name = "FreeU"

    def __init__(self, b1: float, b2: float, s1: float, s2: float, version: int = 1) -> None:
        self.b1, self.b2, self.s1, self.s2, self.version = b1, b2, s1, s2, version
        self._fft_on_cpu: set[str] = set()

    def __repr__(self) -> str:
        return f"<FreeU v{self.version} b1={self.b1} b2={self.b2} s1={self.s1} s2={self.s2}>"

    def scales(self, unet: Any) -> dict[int, tuple[float, float]]:
        base = int(unet.config.block_out_channels[0])
        return {base * 4: (self.b1, self.s1), base * 2: (self.b2, self.s2)}

    def reweight(self, h: torch.Tensor, skip: torch.Tensor, b: float, s: float) -> tuple[torch.Tensor, torch.Tensor]:
        half = h.shape[1] // 2
        h = h.clone()
        if self.version == 2:
            mean = h.mean(1, keepdim=True)
            flat = mean.flatten(1)
            low = flat.min(dim=1).values.view(-1, 1, 1, 1)
            high = flat.max(dim=1).values.view(-1, 1, 1, 1)
            mean = (mean - low) / (high - low)
            h[:, :half] = h[:, :half] * ((b - 1) * mean + 1)
        else:
            h[:, :half] = h[:, :half] * b
        return h, self._filter(skip, s)

    def _filter(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        device = str(x.device)
        if device not in self._fft_on_cpu:
            try:
                return fourier_filter(x, 1, scale)
            except RuntimeError:  # some backends (e.g. MPS) lack these FFTs
                log.warning("FreeU: torch.fft is not available on %s; filtering on the CPU", device)
                self._fft_on_cpu.add(device)
        return fourier_filter(x.cpu(), 1, scale).to(x.device)

    @contextmanager
    def install(self, unet: Any, call: UNetCall) -> Iterator[None]:
        import torch

        scales = self.scales(unet)
        handles = []
        for resnet, channels in decoder_resnets(unet):
            scale = scales.get(channels)
            if scale is None:
                continue

            def pre_hook(
                module: Any, args: tuple, kwargs: dict, channels: int = channels, scale: tuple[float, float] = scale
            ) -> tuple[tuple, dict]:
                joined = args[0] if args else kwargs["input_tensor"]
                h, skip = self.reweight(joined[:, :channels], joined[:, channels:], *scale)
                joined = torch.cat([h, skip], dim=1)
                if args:
                    return (joined, *args[1:]), kwargs
                return args, {**kwargs, "input_tensor": joined}

            handles.append(resnet.register_forward_pre_hook(pre_hook, with_kwargs=True))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


_INPUTS_V1 = (
    Input("model", "MODEL"),
    Float("b1", 1.1, min=0.0, max=10.0, step=0.01),
    Float("b2", 1.2, min=0.0, max=10.0, step=0.01),
    Float("s1", 0.9, min=0.0, max=10.0, step=0.01),
    Float("s2", 0.2, min=0.0, max=10.0, step=0.01),
)


class FreeU(Node):
    category = "model_patches/unet"
    description = (
        "FreeU (Si et al., CVPR 2024): scales the decoder's backbone features by b1/b2 and damps the "
        "low frequencies of its skip connections by s1/s2, at the two lowest-resolution stages. "
        "b = s = 1 is no change."
    )
    inputs = _INPUTS_V1
    outputs = (Output("MODEL"),)

    def run(self, model: DiffusionModel, b1: float, b2: float, s1: float, s2: float) -> tuple:
        return (model.with_wrapper(FreeUHooks(b1, b2, s1, s2, version=1)),)


class FreeU_V2(Node):
    category = "model_patches/unet"
    description = (
        "FreeU v2: like FreeU, but the backbone factor follows each image's structure (1 + (b - 1) x "
        "the normalised mean feature map), which avoids oversaturation."
    )
    inputs = (
        Input("model", "MODEL"),
        Float("b1", 1.3, min=0.0, max=10.0, step=0.01),
        Float("b2", 1.4, min=0.0, max=10.0, step=0.01),
        Float("s1", 0.9, min=0.0, max=10.0, step=0.01),
        Float("s2", 0.2, min=0.0, max=10.0, step=0.01),
    )
    outputs = (Output("MODEL"),)

    def run(self, model: DiffusionModel, b1: float, b2: float, s1: float, s2: float) -> tuple:
        return (model.with_wrapper(FreeUHooks(b1, b2, s1, s2, version=2)),)


NODES = [FreeU, FreeU_V2]
