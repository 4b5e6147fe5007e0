"""Exponential integrators with the data prediction: RES multistep, exponential Heun, 2M CFG++.

In k-diffusion's space (``x = x0 + sigma * eps``, signal scale 1) the probability-flow ODE in
``lambda = -log(sigma)`` is ``dx/dlambda = -(x - D(x))`` for the model's clean estimate ``D``:
its linear part is solved exactly and only ``D`` is approximated over a step of length ``h``.
With ``phi_1(z) = (e^z - 1) / z`` and ``phi_2(z) = (phi_1(z) - 1) / z`` a step is
``x' = e^(-h) x + h (b_1 D_now + b_2 D_other)`` with weights from where ``D_other`` was taken.

* ``res_multistep`` (and ``_ancestral``, ``_cfg_pp``, ``_ancestral_cfg_pp``): the second-order
  multistep "RES" solver of Zhang, Song, Chen, "Improved Order Analysis and Design of
  Exponential Integrator for Diffusion Models Sampling" (arXiv 2308.02157), whose order
  conditions give ``b_2 = phi_2(-h) / c_2`` and ``b_1 = phi_1(-h) - b_2`` for a previous estimate
  at relative offset ``c_2`` (negative: in the past). Euler on the first step. Ancestral variants
  step down to ``sigma_down`` and add ``sigma_up`` noise, and measure ``c_2`` from the previous
  step's ``sigma_down`` to its start (ComfyUI's choice).
* ``exp_heun_2_x0``: the deterministic exponential Heun method, ComfyUI's SEEDS-2 (Gonzalez et al.,
  "SEEDS: Exponential SDE Solvers for Fast High-Quality Sampling from Diffusion Models", NeurIPS
  2023, arXiv 2305.14267) with ``eta = 0``, ``r = 1`` and the ``phi_2`` second stage: a DDIM
  step to the next sigma, the model there, then ``b_2 = phi_2(-h)``-weighted correction. Two model
  calls a step, one for the step to 0 (which lands on the clean estimate).
* ``dpmpp_2m_cfg_pp``: DPM-Solver++(2M) (Lu et al., arXiv 2211.01095) with CFG++ (Chung et al.,
  arXiv 2406.08070): the unconditional estimate re-noises, and the second-order correction is
  ``(guided - previous unconditional) / (2 r)``, as ComfyUI writes it.

Semantics and defaults are ComfyUI 0.8.0's (``res_multistep``, ``sample_exp_heun_2_x0``,
``sample_dpmpp_2m_cfg_pp``); the coefficients are computed in float64 (ComfyUI: float32), a
difference of about 1e-7 relative.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .ancestral import _estimates
from .dpm_solver import ancestral_step

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun


def phi_1(z: float) -> float:
    """``(e^z - 1) / z``, the exponential integrator's first weight function."""
    return math.expm1(z) / z


def phi_2(z: float) -> float:
    """``(phi_1(z) - 1) / z``."""
    return (phi_1(z) - 1.0) / z


def res_weights(h: float, c2: float) -> tuple[float, float]:
    """RES's second-order multistep weights ``(b_1, b_2)`` for a step ``h`` and a previous
    estimate at relative offset ``c2``; ``(0, 0)`` for an empty step, first order for ``c2 = 0``."""
    if h == 0:
        return 0.0, 0.0
    if c2 == 0:
        return phi_1(-h), 0.0
    b2 = phi_2(-h) / c2
    return phi_1(-h) - b2, b2


class ResMultistepSampler:
    """RES second-order multistep (see the module docstring), ancestral when ``eta > 0``."""

    def __init__(self, eta: float = 0.0, s_noise: float = 1.0, cfg_pp: bool = False) -> None:
        self.eta, self.s_noise, self.cfg_pp = float(eta), float(s_noise), bool(cfg_pp)
        self.needs_uncond = self.cfg_pp

    def __repr__(self) -> str:
        return f"ResMultistepSampler(eta={self.eta}, s_noise={self.s_noise}, cfg_pp={self.cfg_pp})"

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = [float(s) for s in run.sigmas]
        x = denoised = run.x
        previous: torch.Tensor | None = None  # the last step's estimate (unconditional for CFG++)
        previous_down = 0.0
        for i in range(run.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised, renoise = _estimates(run, x, sigma, self.cfg_pp)
            down, up = ancestral_step(sigma, sigma_next, self.eta)
            if down == 0 or previous is None:
                x = self._euler(x, denoised, renoise, sigma, down)
            else:
                h = math.log(sigma / down)
                c2 = math.log(previous_down / sigmas[i - 1]) / h
                b1, b2 = res_weights(h, c2)
                if self.cfg_pp:
                    x = x + (denoised - renoise)
                x = x * math.exp(-h) + (renoise * b1 + previous * b2) * h
            if sigma_next > 0 and self.eta > 0:
                x = x + run.noise_like(x) * (self.s_noise * up)
            previous, previous_down = renoise, down
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)

    def _euler(
        self, x: torch.Tensor, denoised: torch.Tensor, renoise: torch.Tensor, sigma: float, down: float
    ) -> torch.Tensor:
        if self.cfg_pp:
            return denoised + (x - renoise) / sigma * down
        return x + (x - denoised) / sigma * (down - sigma)


class ExpHeun2X0Sampler:
    """``exp_heun_2_x0``: exponential Heun in log sigma with the data prediction (module docstring)."""

    def __repr__(self) -> str:
        return "ExpHeun2X0Sampler()"

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = [float(s) for s in run.sigmas]
        x = denoised = run.x
        for i in range(run.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised = run.denoise(x, sigma)
            if sigma_next == 0:
                x = denoised
            else:
                h = math.log(sigma / sigma_next)
                ratio = sigma_next / sigma
                x_next = x * ratio - denoised * math.expm1(-h)  # DDIM to sigma_next
                denoised_next = run.denoise(x_next, sigma_next)
                b2 = -phi_2(-h) * h  # ComfyUI's ei_h_phi_2(-h) with r = 1
                b1 = math.expm1(-h) - b2
                x = x * ratio - (denoised * b1 + denoised_next * b2)
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)


class DPMPP2MCFGPPSampler:
    """``dpmpp_2m_cfg_pp``: DPM-Solver++(2M) with CFG++ (module docstring)."""

    needs_uncond = True

    def __repr__(self) -> str:
        return "DPMPP2MCFGPPSampler()"

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = [float(s) for s in run.sigmas]
        x = denoised = run.x
        previous: torch.Tensor | None = None
        for i in range(run.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised, uncond = run.denoise_with_uncond(x, sigma)
            if sigma_next == 0:
                x = denoised
            else:
                h = math.log(sigma / sigma_next)
                decay = math.exp(-h)
                mix = uncond * -decay
                if previous is not None:
                    r = math.log(sigmas[i - 1] / sigma) / h
                    mix = mix - (denoised - previous) * (math.expm1(-h) / (2 * r))
                x = denoised + mix + x * decay
            previous = uncond
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)


def named_sampler(name: str) -> Any:
    """The SAMPLER of one of this module's ``sampler_name`` values, with ComfyUI's defaults."""
    if name == "exp_heun_2_x0":
        return ExpHeun2X0Sampler()
    if name == "dpmpp_2m_cfg_pp":
        return DPMPP2MCFGPPSampler()
    if name.startswith("res_multistep"):
        ancestral = "_ancestral" in name
        return ResMultistepSampler(eta=1.0 if ancestral else 0.0, cfg_pp=name.endswith("_cfg_pp"))
    raise ValueError(f"not an exponential-integrator sampler name: {name!r}")
