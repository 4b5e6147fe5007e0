"""RescaleCFG: CFG whose result keeps the conditional prediction's standard deviation.

Lin, Liu, Li, Yang, "Common Diffusion Noise Schedules and Sample Steps are Flawed", WACV 2024
(arXiv:2305.08891), section 3.4. At high guidance scales the CFG result's magnitude grows well
beyond what the model ever predicts, which overexposes (burns) images, worst with zero-terminal-
SNR schedules. The fix rescales the guided prediction to the standard deviation of the
conditional one and blends: ``multiplier * rescaled + (1 - multiplier) * cfg``.

Like ComfyUI's node, the rescale happens on v-prediction outputs (the paper's setting) whatever
the model predicts: both predictions are converted to v, combined, rescaled and converted back
to a denoised estimate. It is a ``sampler_cfg_function`` (it replaces the CFG combination); at
``multiplier = 0`` it is plain CFG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Node, Output
from nodes.diffusion.cfg_hooks import CFG

if TYPE_CHECKING:
    import torch


def to_v(denoised: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The v-prediction giving ``denoised`` at ``x`` (k-diffusion space, ``x = x0 + sigma * eps``)."""
    s2 = sigma * sigma + 1.0
    return (x / s2 - denoised) * s2.sqrt() / sigma


def from_v(v: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The denoised estimate of a v-prediction at ``x`` (the inverse of :func:`to_v`)."""
    s2 = sigma * sigma + 1.0
    return x / s2 - v * sigma / s2.sqrt()


class RescaleCFGHook:
    """The CFG function of one :class:`RescaleCFG` node output."""

    def __init__(self, multiplier: float = 0.7) -> None:
        self.multiplier = float(multiplier)

    def __call__(self, args: dict[str, Any]) -> torch.Tensor:
        import torch

        x = args["input"]
        cond_d, uncond_d = args["cond_denoised"], args["uncond_denoised"]
        sigma = args["sigma"].to(x.dtype).reshape((-1,) + (1,) * (x.dim() - 1))
        scale = args["cond_scale"]
        v_cond, v_uncond = to_v(cond_d, x, sigma), to_v(uncond_d, x, sigma)
        v_cfg = v_uncond + scale * (v_cond - v_uncond)
        if self.multiplier != 0.0:
            dims = tuple(range(1, x.dim()))
            ratio = torch.std(v_cond, dim=dims, keepdim=True) / torch.std(v_cfg, dim=dims, keepdim=True)
            v_cfg = self.multiplier * (v_cfg * ratio) + (1.0 - self.multiplier) * v_cfg
        return x - from_v(v_cfg, x, sigma)

    def __repr__(self) -> str:
        return f"<RescaleCFG multiplier={self.multiplier}>"


class RescaleCFG(Node):
    category = "advanced/model"
    description = (
        'RescaleCFG (Lin et al., "Common Diffusion Noise Schedules and Sample Steps are Flawed", '
        "WACV 2024): rescales the CFG result (as v-prediction) to the conditional prediction's standard "
        "deviation, against overexposure at high CFG, especially on v-prediction and zero-terminal-SNR "
        "models."
    )
    inputs = (
        Input("model", "MODEL"),
        Float(
            "multiplier",
            0.7,
            min=0.0,
            max=1.0,
            step=0.01,
            tooltip="How much of the rescaled result to use: 0 is plain CFG, 1 fully rescaled (the paper "
            "recommends 0.7).",
        ),
    )
    outputs = (Output("MODEL"),)

    def run(self, model: Any, multiplier: float) -> tuple:
        return (model.with_guidance_hook(CFG, RescaleCFGHook(multiplier)),)


NODES = [RescaleCFG]

__all__ = ["NODES", "RescaleCFG", "RescaleCFGHook", "from_v", "to_v"]
