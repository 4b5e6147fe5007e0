"""Inversion-free editing (InfEdit): DDCM's virtual inversion, no inversion pass at all.

Xu, Huang, Pan, Ma, Chai, "Inversion-Free Image Editing with Natural Language", CVPR 2024,
arXiv:2312.04965. With DDIM's variance chosen as ``sigma_t = sqrt(1 - abar_{t-1})`` the sampling
step loses its "direction" term and becomes multi-step consistency sampling: predict the clean
latent, re-noise it to the next level with fresh noise. When the clean source latent ``z0`` is
known, the noise that makes the source branch's prediction *exactly* ``z0`` is
``eps_cons = (z_src - sqrt(abar) z0) / sqrt(1 - abar)`` (the Denoising Diffusion Consistent Model,
DDCM): the source branch needs no inversion, it is ``z0`` re-noised at every level. The target branch
predicts with the target prompt and is calibrated by the source branch's error
``eps_cons - eps_src``. In k-diffusion's space (``x = x0 + sigma * eps``) one step is::

    x0_tgt = z0 + D_tgt(z_tgt, sigma) - D_src(z_src, sigma)
    z_src  = z0     + sigma' * n        (n: fresh noise, shared by both branches)
    z_tgt  = x0_tgt + sigma' * n

and the edit is the last ``x0_tgt``. With the source prompt as the target, ``x0_tgt`` is ``z0``:
the picture comes back exactly. The paper adds attention control (its "unified attention control")
on top; Weft runs the DDCM sampler without it.

**Which models.** The method is designed for latent consistency models (LCM, 4-15 steps, CFG ~1-2).
Weft runs it on every text-to-image UNet it loads, SD1.x, SD2.x and SDXL, epsilon or v-prediction
(the update above only uses the clean estimate, so both parametrisations work); quality is best
with LCM weights (an LCM-LoRA on the MODEL) and with ordinary weights it needs more steps (~20).
It refuses inpainting UNets (extra input channels: the branches have no mask and masked image to
give them) and schedules with zero terminal SNR (an infinite top noise level has no DDCM step).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Node, Output

from .common import Denoiser, InversionError, check_conditioning, check_latent, fail, make_guider

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

NODE = "InversionFreeEditSampler"


def unsupported_model_reason(model: Any, sigmas: Any = None) -> str | None:
    """Why InfEdit cannot run on ``model`` (``None`` when it can)."""
    in_channels = getattr(getattr(model.prepare(), "config", None), "in_channels", None)
    if in_channels is not None and in_channels != model.latent_channels:
        return (
            f"it is an inpainting model ({in_channels} input channels); inversion-free editing needs a "
            "text-to-image UNet (SD1.x, SD2.x or SDXL, epsilon or v-prediction; LCM weights work best)"
        )
    if model.scheduler_config.get("rescale_betas_zero_snr"):
        return "its schedule has zero terminal SNR (an infinite top noise level), which DDCM's step cannot start from"
    if sigmas is not None and not math.isfinite(float(sigmas[0])):
        return "the schedule starts at an infinite noise level, which DDCM's step cannot start from"
    return None


def ddcm_edit(
    source: Denoiser,
    target: Denoiser,
    z0: torch.Tensor,
    start: torch.Tensor,
    sigmas: torch.Tensor,
    noise_like: Any,
    run: LoopRun | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The InfEdit loop; returns (the edited clean latent, the source branch's last prediction error).

    ``start`` is where both branches begin (any noisy version of ``z0``, or noise); ``noise_like(x)``
    draws the fresh noise of each step (seeded by the caller).
    """
    z0 = target.to_work(z0)
    z_src = z_tgt = target.to_work(start)
    x0_tgt = z_tgt
    source_error = z0
    for j in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[j]), float(sigmas[j + 1])
        d_src = source(z_src, sigma)
        d_tgt = target(z_tgt, sigma)
        source_error = d_src - z0
        x0_tgt = d_tgt - source_error
        if sigma_next > 0:
            noise = noise_like(z0)
            z_src = z0 + sigma_next * noise
            z_tgt = x0_tgt + sigma_next * noise
        else:
            z_tgt = x0_tgt
        if run is not None:
            z_tgt = run.step_done(j + 1, z_tgt, x0_tgt)
    return x0_tgt, source_error


class InversionFreeEditValue:
    """SAMPLER: InfEdit's DDCM loop; the run's GUIDER is the target branch."""

    def __init__(self, source_latent: dict[str, Any], positive: Any, negative: Any | None, source_cfg: float) -> None:
        self.source_latent = source_latent
        self.positive, self.negative, self.source_cfg = positive, negative, float(source_cfg)

    def __repr__(self) -> str:
        return f"<SAMPLER InversionFreeEdit source_cfg={self.source_cfg:g}>"

    def __weft_cache_size__(self) -> int:
        return 1024

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        reason = unsupported_model_reason(run.model, run.sigmas)
        if reason is not None:
            raise InversionError(f"{NODE}: the guider's input 'model' cannot run inversion-free editing: {reason}")
        if run.mask is not None:
            raise InversionError(
                f"{NODE}: the latent_image carries a noise_mask; inversion-free editing changes the "
                "whole latent (apply the mask afterwards)"
            )
        z0 = run.model.process_in(self.source_latent["samples"].float()).to(run.device)
        if tuple(z0.shape) != tuple(run.latent.shape):
            raise InversionError(
                f"{NODE}: input 'source_latent' has shape {tuple(z0.shape)} but the sampled "
                f"latent_image has {tuple(run.latent.shape)}; sample the source latent itself"
            )
        negative = self.negative
        if negative is None and not math.isclose(self.source_cfg, 1.0):
            negative = getattr(run.guider, "conds", {}).get("negative")
            if negative is None:
                raise InversionError(
                    f"{NODE}: input 'source_cfg' is {self.source_cfg:g} but there is no negative "
                    "conditioning (connect source_negative, or use source_cfg 1)"
                )
        shape = tuple(z0.shape)
        source = Denoiser(make_guider(run.model, self.positive, negative, self.source_cfg), shape)
        target = Denoiser(run.guider, shape)
        x, _ = ddcm_edit(source, target, z0, run.x, run.sigmas, run.noise_like, run)
        return run.finish(x, x)


class InversionFreeEditSampler(Node):
    display_name = "Inversion-Free Edit Sampler (InfEdit)"
    category = "sampling/inversion"
    description = (
        "Inversion-free editing (Xu et al., 'Inversion-Free Image Editing with Natural Language', InfEdit, "
        "CVPR 2024, arXiv:2312.04965): a SAMPLER running DDCM's virtual inversion. The source branch is the "
        "source latent re-noised at every step (no inversion pass); the target branch, driven by the guider's "
        "target prompt, is calibrated by the source branch's prediction error. Designed for LCM models "
        "(4-15 steps, CFG 1-2); Weft runs it on any SD1.x/SD2.x/SDXL text-to-image UNet, epsilon or "
        "v-prediction (ordinary weights need ~20 steps), and refuses inpainting UNets and zero-terminal-SNR "
        "schedules. Use with SamplerCustomAdvanced, RandomNoise, a BasicScheduler schedule and the source "
        "latent as latent_image."
    )
    inputs = (
        Input("source_latent", "LATENT", tooltip="The picture to edit (VAEEncode of it)."),
        Input("source_positive", "CONDITIONING", tooltip="The prompt that describes the source picture."),
        Input(
            "source_negative",
            "CONDITIONING",
            optional=True,
            tooltip="The source branch's negative (default: the guider's negative).",
        ),
        Float(
            "source_cfg",
            1.0,
            min=0.0,
            max=100.0,
            step=0.1,
            round=0.01,
            tooltip="CFG of the source branch (the paper uses 1).",
        ),
    )
    outputs = (Output("SAMPLER"),)

    def run(self, source_latent: Any, source_positive: Any, source_cfg: float, source_negative: Any = None) -> tuple:
        check_latent(NODE, "source_latent", source_latent)
        check_conditioning(NODE, "source_positive", source_positive)
        check_conditioning(NODE, "source_negative", source_negative, optional=True)
        if source_cfg < 0:
            raise fail(NODE, "source_cfg", f"must be at least 0, got {source_cfg}")
        return (InversionFreeEditValue(source_latent, source_positive, source_negative, source_cfg),)


NODES = [InversionFreeEditSampler]
