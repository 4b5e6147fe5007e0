"""Euler and DPM-Solver++(2S) steps, ancestral or not, plain or CFG++ (ComfyUI's names and nodes).

* **Ancestral sampling** (k-diffusion's ``get_ancestral_step``): each step goes deterministically
  down to ``sigma_down`` and fresh noise of size ``sigma_up`` brings the sample back up to the
  next sigma, ``sigma_up = min(s', eta * sqrt(s'^2 (s^2 - s'^2) / s^2))``, ``sigma_down =
  sqrt(s'^2 - sigma_up^2)``. ``eta = 1`` adds DDPM's amount of noise, 0 solves the ODE.
  The noise comes from the run's seeded generator (ComfyUI's ``default_noise_sampler``).
* **CFG++** (Chung, Kim, Park, Nam, Ye, "CFG++: Manifold-constrained Classifier Free Guidance
  for Diffusion Models", ICLR 2025, arXiv 2406.08070): a DDIM-like step is "denoise, then
  re-noise"; CFG++ denoises with the guided estimate but re-noises with the *unconditional*
  noise ``(x - uncond) / sigma``, which keeps the sample near the data manifold and lets small
  guidance scales (about 0.5-2 on ComfyUI's cfg, where plain CFG needs 5-8) guide. The
  unconditional estimate comes from the same model call (:meth:`LoopRun.denoise_with_uncond`).

Semantics are ComfyUI 0.8.0's (``sample_euler_ancestral``, ``sample_euler_ancestral_cfg_pp``,
``sample_euler_cfg_pp``, ``sample_dpmpp_2s_ancestral(_cfg_pp)`` and the advanced samplers'
``sample_euler_pp``), quirks included so the same seed gives the same picture:

* plain ancestral Euler lands on the clean estimate whenever ``sigma_down`` is 0 (the last step,
  or ``eta`` so large that all of the next level is noise) and then adds no noise; the CFG++
  one lands there only on the last step and otherwise adds ``alpha * sigma_up`` noise;
* DPM-Solver++(2S) CFG++ re-noises its second stage with the unconditional estimate of the
  *midpoint* call (ComfyUI's hook keeps the latest one), so unlike the others it does not
  reduce to its plain base when the two predictions agree.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nodes.api import Combo, Float, Node, Output

from .dpm_solver import ancestral_step

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun


def _estimates(run: LoopRun, x: torch.Tensor, sigma: float, cfg_pp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(guided, re-noising)`` estimates: the unconditional one for CFG++, else the guided again."""
    if cfg_pp:
        return run.denoise_with_uncond(x, sigma)
    denoised = run.denoise(x, sigma)
    return denoised, denoised


class _AncestralSettings:
    """What the ancestral samplers share: ``eta`` (0 = deterministic), ``s_noise`` and CFG++."""

    def __init__(self, eta: float = 1.0, s_noise: float = 1.0, cfg_pp: bool = False) -> None:
        self.eta, self.s_noise, self.cfg_pp = float(eta), float(s_noise), bool(cfg_pp)
        self.needs_uncond = self.cfg_pp

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eta={self.eta}, s_noise={self.s_noise}, cfg_pp={self.cfg_pp})"


class EulerSampler(_AncestralSettings):
    """Euler steps in sigma (Karras et al. 2022, Algorithm 2), ancestral when ``eta > 0``, and
    CFG++ when ``cfg_pp``: ``euler_cfg_pp`` (eta 0), ``euler_ancestral_cfg_pp`` (eta 1) and
    the SamplerEulerAncestral(CFGPP) nodes' settings."""

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = [float(s) for s in run.sigmas]
        x = denoised = run.x
        for i in range(run.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised, renoise = _estimates(run, x, sigma, self.cfg_pp)
            down, up = ancestral_step(sigma, sigma_next, self.eta)
            if self.cfg_pp:
                if sigma_next == 0:
                    x = denoised
                else:
                    x = denoised + (x - renoise) / sigma * down
                    if self.eta > 0 and self.s_noise > 0:
                        x = x + run.noise_like(x) * (self.s_noise * up)
            elif down == 0:
                x = denoised
            else:
                x = x + (x - denoised) / sigma * (down - sigma)
                x = x + run.noise_like(x) * (self.s_noise * up)
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)


class EulerCFGppAlternative:
    """SamplerEulerCFGpp's "alternative" version (ComfyUI's experimental ``sample_euler_pp``):
    the Euler derivative of ``x - guided + uncond``, i.e. ``d = (x - 2 guided + uncond) / sigma``,
    for every step including the last (no landing on the clean estimate)."""

    needs_uncond = True

    def __repr__(self) -> str:
        return "EulerCFGppAlternative()"

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = [float(s) for s in run.sigmas]
        x = denoised = run.x
        for i in range(run.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised, uncond = run.denoise_with_uncond(x, sigma)
            x = x + (x - denoised + uncond - denoised) / sigma * (sigma_next - sigma)
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)


class DPMPP2SAncestralSampler(_AncestralSettings):
    """DPM-Solver++(2S) (Lu et al. 2022, "DPM-Solver++", arXiv 2211.01095): a second-order
    single-step solver in ``lambda = -log(sigma)`` with the data prediction, its second call at
    the geometric midpoint; ancestral with ``eta``; CFG++ when ``cfg_pp``
    (``dpmpp_2s_ancestral_cfg_pp``)."""

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = [float(s) for s in run.sigmas]
        x = denoised = run.x
        for i in range(run.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised, renoise = _estimates(run, x, sigma, self.cfg_pp)
            down, up = ancestral_step(sigma, sigma_next, self.eta)
            if down == 0:
                x = denoised
            else:
                x = self._second_order(run, x, denoised, renoise, sigma, down)
            if sigma_next > 0:
                x = x + run.noise_like(x) * (self.s_noise * up)
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)

    def _second_order(
        self, run: LoopRun, x: torch.Tensor, denoised: torch.Tensor, renoise: torch.Tensor, sigma: float, down: float
    ) -> torch.Tensor:
        """The step from ``sigma`` down to ``down``: a first-order step to the midpoint
        ``sqrt(sigma * down)``, the model there, then the full step with the midpoint estimate."""
        h = math.log(sigma / down)
        mid = math.exp(math.log(sigma) - h / 2)
        start = x + (denoised - renoise) if self.cfg_pp else x
        x_mid = start * (mid / sigma) - math.expm1(-h / 2) * denoised
        if self.cfg_pp:
            denoised_mid, renoise_mid = run.denoise_with_uncond(x_mid, mid)
            start = x + (denoised - renoise_mid)  # ComfyUI's hook has moved on to the midpoint call
        else:
            denoised_mid = run.denoise(x_mid, mid)
        return start * (down / sigma) - math.expm1(-h) * denoised_mid


def named_sampler(name: str) -> Any:
    """The SAMPLER of one of this module's ``sampler_name`` values, with ComfyUI's defaults."""
    if name == "euler_cfg_pp":
        return EulerSampler(eta=0.0, s_noise=0.0, cfg_pp=True)
    if name == "euler_ancestral_cfg_pp":
        return EulerSampler(eta=1.0, s_noise=1.0, cfg_pp=True)
    if name == "dpmpp_2s_ancestral_cfg_pp":
        return DPMPP2SAncestralSampler(eta=1.0, s_noise=1.0, cfg_pp=True)
    raise ValueError(f"not an ancestral/CFG++ sampler name: {name!r}")


def _eta(maximum: float = 100.0) -> Any:
    return Float(
        "eta",
        1.0,
        min=0.0,
        max=maximum,
        step=0.01,
        round=False,
        tooltip="Ancestral noise per step: 1 adds DDPM's amount, 0 solves the ODE (no noise).",
    )


def _s_noise(maximum: float = 100.0) -> Any:
    return Float("s_noise", 1.0, min=0.0, max=maximum, step=0.01, round=False, tooltip="Scale of the added noise.")


class SamplerEulerAncestral(Node):
    category = "sampling/custom_sampling/samplers"
    description = "Euler ancestral (ComfyUI's euler_ancestral) with its noise settings."
    inputs = (_eta(), _s_noise())
    outputs = (Output("SAMPLER"),)

    def run(self, eta: float, s_noise: float) -> tuple:
        return (EulerSampler(eta, s_noise),)


class SamplerEulerAncestralCFGPP(Node):
    display_name = "SamplerEulerAncestralCFG++"
    category = "sampling/custom_sampling/samplers"
    description = (
        "Euler ancestral with CFG++ (Chung et al., arXiv 2406.08070): denoise with the guided "
        "estimate, re-noise with the unconditional one; use a low cfg (about 0.5-2)."
    )
    inputs = (_eta(1.0), _s_noise(10.0))
    outputs = (Output("SAMPLER"),)

    def run(self, eta: float, s_noise: float) -> tuple:
        return (EulerSampler(eta, s_noise, cfg_pp=True),)


class SamplerDPMPP_2S_Ancestral(Node):  # noqa: N801  (ComfyUI's class name)
    category = "sampling/custom_sampling/samplers"
    description = "DPM-Solver++(2S) ancestral (ComfyUI's dpmpp_2s_ancestral) with its noise settings."
    inputs = (_eta(), _s_noise())
    outputs = (Output("SAMPLER"),)

    def run(self, eta: float, s_noise: float) -> tuple:
        return (DPMPP2SAncestralSampler(eta, s_noise),)


class SamplerEulerCFGpp(Node):
    display_name = "SamplerEulerCFG++"
    category = "_for_testing"
    experimental = True
    description = (
        "Euler with CFG++ (Chung et al., arXiv 2406.08070): 'regular' is euler_cfg_pp; "
        "'alternative' steps along the derivative of x - guided + uncond (ComfyUI's experimental variant)."
    )
    inputs = (Combo("version", ["regular", "alternative"]),)
    outputs = (Output("SAMPLER"),)

    def run(self, version: str) -> tuple:
        if version == "alternative":
            return (EulerCFGppAlternative(),)
        return (named_sampler("euler_cfg_pp"),)


NODES = [SamplerEulerAncestral, SamplerEulerAncestralCFGPP, SamplerDPMPP_2S_Ancestral, SamplerEulerCFGpp]
