"""DDIM inversion: run the deterministic DDIM sampler backwards, from the picture up to noise.

Song, Meng, Ermon, "Denoising Diffusion Implicit Models" (ICLR 2021) observed that DDIM with
eta 0 is the Euler discretisation of an ODE, and so can be integrated the other way; Mokady et
al., "Null-text Inversion for Editing Real Images using Guided Diffusion Models" (CVPR 2023),
made this the starting point of real-image editing.

In k-diffusion's space (``x = x0 + sigma * eps``) a DDIM step from ``sigma`` down to ``sigma'``
is ``x' = x + (sigma' - sigma) * eps(x, sigma)`` (Weft's ``ddim`` sampler is exactly this Euler
step). Inverting it means finding the ``x`` at the higher level whose step lands on the known
``x'``; the classic approximation evaluates the noise estimate on the known latent at the higher
level::

    x = x' + (sigma - sigma') * eps(x', sigma)

``refine`` iterations then solve the implicit equation ``x = x' + (sigma - sigma') * eps(x, sigma)``
by fixed-point iteration (as in the fixed-point/ReNoise refinements of DDIM inversion), which makes
the regeneration with the same prompt and CFG reproduce the picture much more closely, one model
evaluation per iteration and step.

The matching sampler is deterministic DDIM (eta 0) over the same schedule: ``InversionSampler``
(which starts from the stored trajectory, in the inversion's precision), or simply KSamplerAdvanced
with ``sampler_name: ddim``, ``add_noise: disable`` on the noisy LATENT this node returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.api import Input, Int, Node, Output

from .common import (
    INVERSION,
    Denoiser,
    Inversion,
    InversionRun,
    check_inversion_inputs,
    fail,
    inversion_run,
    make_guider,
    model_inputs,
    out_latent,
    precision_input,
    result,
    schedule,
    schedule_inputs,
    stored,
)

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

NODE = "DDIMInversion"


def ddim_invert(
    denoise: Denoiser, x0: torch.Tensor, sigmas: torch.Tensor, refine: int = 0, run: InversionRun | None = None
) -> tuple[list[torch.Tensor], float]:
    """The DDIM trajectory of ``x0`` (scaled latent): ``states[i]`` sits at ``sigmas[i]``.

    Returns the states (``states[-1]`` is ``x0``) and the largest fixed-point residual of the
    last refinement iteration (0 without refinement): how far the inversion is from solving the
    implicit step exactly.
    """
    n = len(sigmas) - 1
    states: list[Any] = [None] * (n + 1)
    x = denoise.to_work(x0)
    states[n] = x
    residual = 0.0
    for done, i in enumerate(reversed(range(n)), start=1):
        sigma, sigma_low = float(sigmas[i]), float(sigmas[i + 1])
        known = x
        x = known + (sigma - sigma_low) * denoise.eps(known, sigma)
        for k in range(refine):
            better = known + (sigma - sigma_low) * denoise.eps(x, sigma)
            if k == refine - 1:
                residual = max(residual, float((better - x).abs().max()))
            x = better
        states[i] = x
        if run is not None:
            run.step(done)
    return states, residual


def ddim_step(denoise: Denoiser, x: torch.Tensor, sigma: float, sigma_next: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One deterministic DDIM (eta 0) step in k-diffusion space; returns (next x, clean estimate)."""
    denoised = denoise(x, sigma)
    eps = (x - denoised) / sigma
    return x + (sigma_next - sigma) * eps, denoised


def regenerate(inversion: Inversion, run: LoopRun, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DDIM (eta 0) from the stored state at ``run.sigmas[0]``, with the run's guider."""
    denoise = Denoiser(run.guider, tuple(inversion.states[0].shape), inversion.precision)
    x = denoise.to_work(inversion.states[start])
    denoised = x
    sigmas = run.sigmas
    for j in range(len(sigmas) - 1):
        x, denoised = ddim_step(denoise, x, float(sigmas[j]), float(sigmas[j + 1]))
        x = run.step_done(j + 1, x, denoised)
    return x, denoised


class DDIMInversion(Node):
    category = "sampling/inversion"
    description = (
        "DDIM inversion (Song et al., ICLR 2021; the starting point of Mokady et al.'s null-text inversion, "
        "CVPR 2023): runs deterministic DDIM backwards from the LATENT up to noise along the chosen schedule. "
        "Outputs the noisy latent (regenerate it with KSamplerAdvanced, ddim, add_noise disabled, same steps and "
        "scheduler) and an INVERSION holding the whole trajectory for InversionSampler, InversionSigmas and "
        "DirectInversionSampler. refine > 0 solves each implicit step by fixed-point iteration: a closer "
        "round trip for one more model call per step and iteration."
    )
    inputs = (
        *model_inputs(),
        Input("latent", "LATENT", tooltip="The picture to invert (VAEEncode of it)."),
        *schedule_inputs(),
        Int(
            "refine",
            2,
            min=0,
            max=20,
            tooltip="Fixed-point iterations per step (0: the classic one-evaluation DDIM inversion).",
        ),
        precision_input(),
    )
    outputs = (Output("LATENT", "noisy_latent"), Output(INVERSION, "inversion"))

    def run(
        self,
        model: Any,
        positive: Any,
        latent: dict,
        steps: int,
        scheduler: str,
        denoise: float,
        refine: int,
        precision: str,
        cfg: float = 1.0,
        negative: Any = None,
    ) -> Any:
        model, samples = check_inversion_inputs(NODE, model, positive, negative, latent)
        if refine < 0:
            raise fail(NODE, "refine", f"must be 0 or more, got {refine}")
        sigmas = schedule(NODE, model, scheduler, steps, denoise)
        guider = make_guider(model, positive, negative, cfg)
        denoiser = Denoiser(guider, tuple(samples.shape), precision)
        x0 = model.process_in(samples.to(denoiser.dtype))
        with inversion_run(guider, sigmas, len(sigmas) - 1) as run:
            states, residual = ddim_invert(denoiser, x0, sigmas, refine, run)
            states = [stored(s) for s in states]
        inversion = Inversion(
            "ddim",
            sigmas.clone(),
            states,
            positive,
            negative,
            float(cfg),
            precision,
            options={"refine": int(refine)},
            latent=latent,
        )
        noisy = out_latent(latent, model.process_out(states[0]).float())
        lines = [
            f"DDIM inversion: {len(sigmas) - 1} steps, {denoiser.calls} model evaluations"
            + (f", last fixed-point residual {residual:.2e}" if refine else "")
        ]
        return result((noisy, inversion), run.reports, lines)


NODES = [DDIMInversion]
