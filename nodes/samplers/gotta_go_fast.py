"""An adaptive-step SDE solver for diffusion models: "Gotta Go Fast".

Jolicoeur-Martineau, Li, Piché-Taillefer, Kachman, Mitliagkas, "Gotta Go Fast When Generating
Data with Score-Based Models", arXiv 2105.14080 (2021).

Fixed-step Euler-Maruyama wastes evaluations where the trajectory is smooth and is inaccurate
where it is not. The paper's solver (its Algorithm 1) takes, from ``x`` at time ``t`` with step
``h``, an Euler-Maruyama step ``x' = x + K1`` and an improved-Euler (stochastic Heun) step
``x'' = x + (K1 + K2) / 2`` whose second stage evaluates the model at ``(x', t - h)`` with the
*same* Brownian increment. ``x' - x''`` estimates the local error; it is measured in the
scaled l2 norm ``sqrt(mean(((x' - x'') / delta)^2))`` with the mixed tolerance ``delta =
max(eps_abs, eps_rel * max(|x'|, |x'_prev|))`` (``x'_prev`` is the previous accepted
Euler-Maruyama proposal). A step is accepted when the norm ``E`` is at most 1, continuing from
the extrapolated ``x''``; either way the next step is ``h <- min(t - t_end, safety * h *
E^(-exponent))``. The paper's ``exponent`` 0.9 suits the SDE; for the ODE (``eta = 0``) the
estimate shrinks as ``h^2`` and 0.9 over-corrects (about every other step is rejected, measured
on Gaussian data: 334 evaluations at ``rel_tol`` 0.01 against 68 with 0.5), so use 0.5 there.
Two model evaluations per attempt (one when a rejected step is retried: the estimate at its
start is kept), and at the end one denoising step (the paper's "denoise" option) when the
schedule goes on to sigma 0.

Here the SDE is written in k-diffusion's space with the noise level as time (``x = x0 + sigma *
eps``, the model as the denoiser ``D``, score ``(D - x) / sigma^2``): the family of reverse
SDEs with the probability flow's marginals,
``dx = -(1 + eta^2) sigma * score dsigma + eta * sqrt(2 sigma) dW`` (sigma decreasing), so a
step of size ``h`` from ``sigma`` is
``K = (1 + eta^2) (h / sigma) (D(x, sigma) - x) + eta * s_noise * sqrt(2 sigma h) z``.
``eta = 1`` is the reverse-time SDE the paper solves; ``eta = 0`` the probability-flow ODE,
where the pair is Euler against Heun (EDM's second-order step). ``h_init`` is a fraction of the
noise range, as the paper's 0.01 is of its unit time interval.

Like every adaptive solver it ignores the schedule's intermediate sigmas: it runs from the first
sigma to the last nonzero one (see :mod:`.adaptive`). The batch shares one step size: a step is
accepted when every image's error norm is within tolerance (the paper steps each image on its
own). Noise comes from the run's seeded generator, so a seed reproduces.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nodes.api import Float, Node, Output

from .adaptive import StepStats, estimated_total, integration_range, tolerance_scale

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

#: the defaults of the paper's code (Jolicoeur-Martineau et al.'s score_sde_fast_sampling)
DEFAULTS: dict[str, float] = {
    "abs_tol": 0.0078,
    "rel_tol": 0.01,
    "safety": 0.9,
    "exponent": 0.9,
    "h_init": 0.01,
    "eta": 1.0,
    "s_noise": 1.0,
}
#: attempts without progress after which a run stops with an error instead of looping
_MAX_ATTEMPTS = 100_000


class GottaGoFastSampler:
    """The paper's adaptive Euler-Maruyama / improved-Euler solver as a SAMPLER with its own loop."""

    name = "gotta_go_fast"

    def __init__(
        self,
        abs_tol: float = 0.0078,
        rel_tol: float = 0.01,
        safety: float = 0.9,
        exponent: float = 0.9,
        h_init: float = 0.01,
        eta: float = 1.0,
        s_noise: float = 1.0,
    ) -> None:
        if not 0 < h_init <= 1:
            raise ValueError(f"gotta_go_fast: h_init must be in (0, 1] (a fraction of the noise range), got {h_init}")
        if not safety > 0:
            raise ValueError(f"gotta_go_fast: safety must be above 0, got {safety}")
        self.abs_tol, self.rel_tol = float(abs_tol), float(rel_tol)
        self.safety, self.exponent, self.h_init = float(safety), float(exponent), float(h_init)
        self.eta, self.s_noise = float(eta), float(s_noise)
        self.stats = StepStats(self.name)

    def begin_run(self, sigmas: Any) -> None:
        self.stats.reset()

    def report(self) -> dict[str, Any]:
        return self.stats.report()

    def _increment(
        self, x: torch.Tensor, denoised: torch.Tensor, sigma: float, h: float, z: torch.Tensor | None
    ) -> torch.Tensor:
        """``K``: drift times ``h`` plus the diffusion times the Brownian increment ``z``."""
        k = (denoised - x) * ((1 + self.eta**2) * h / sigma)
        if z is not None:
            k = k + z * (self.eta * self.s_noise * math.sqrt(2 * sigma * h))
        return k

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:

        stats = self.stats
        stats.reset()
        stats.ran = True
        calls_before = run.model_calls
        span = integration_range(run)
        sigma, end = span.start, span.end
        h = self.h_init * (span.start - span.end)
        stochastic = self.eta > 0 and self.s_noise != 0
        x = x_prev = run.x
        denoised: torch.Tensor | None = None  # the model's estimate at (x, sigma), once evaluated
        last = x  # the estimate at the start of the last accepted step (previews, denoised_output)
        attempts = 0
        while sigma - end > 1e-7 * span.start:
            attempts += 1
            if attempts > _MAX_ATTEMPTS:
                raise RuntimeError("gotta_go_fast: the step size collapsed; loosen the tolerances")
            h = min(h, sigma - end)
            sigma_next = sigma - h
            if denoised is None:  # kept while a rejected step is retried from the same point
                denoised = run.denoise(x, sigma)
            z = run.noise_like(x) if stochastic else None
            k1 = self._increment(x, denoised, sigma, h, z)
            proposal = x + k1  # Euler-Maruyama
            k2 = self._increment(proposal, run.denoise(proposal, sigma_next), sigma_next, h, z)
            extrapolated = x + (k1 + k2) * 0.5  # improved Euler
            scaled = (proposal - extrapolated) / tolerance_scale(self.abs_tol, self.rel_tol, proposal, x_prev)
            error = float(scaled.square().flatten(1).mean(1).sqrt().max())  # the worst image of the batch
            if not math.isfinite(error):
                raise RuntimeError(f"gotta_go_fast: non-finite values in the sample at sigma {sigma:.4g}")
            if error <= 1.0:
                x, x_prev, sigma = extrapolated, proposal, sigma_next
                stats.accepted += 1
                left = sigma - end if sigma - end > 1e-7 * span.start else 0.0
                last, denoised = denoised, None
                h = self.safety * h * max(error, 1e-10) ** -self.exponent
                x = run.step_done(stats.accepted, x, last, total=estimated_total(stats.accepted, left, h), sigma=sigma)
                continue
            stats.rejected += 1
            h = self.safety * h * error**-self.exponent
        if span.to_zero:  # the paper's final denoising step
            x = last = run.denoise(x, end)
        stats.evaluations = run.model_calls - calls_before
        return run.finish(x, last)


class SamplerGottaGoFast(Node):
    category = "sampling/custom_sampling/samplers"
    description = (
        "Adaptive step size SDE solver (Jolicoeur-Martineau et al., 'Gotta Go Fast When Generating Data "
        "with Score-Based Models', arXiv 2105.14080): Euler-Maruyama against improved Euler with a "
        "mixed absolute/relative tolerance, so it spends model evaluations where the trajectory needs "
        "them. It ignores the schedule's steps and intermediate sigmas. eta 1 solves the reverse SDE "
        "(the paper), 0 the ODE. Its report gives the model evaluations and accepted/rejected steps."
    )
    inputs = (
        Float(
            "abs_tol",
            0.0078,
            min=0.0,
            max=10.0,
            step=0.0001,
            round=False,
            tooltip="Absolute tolerance (latent units); the paper's 0.0078 is 1/128.",
        ),
        Float(
            "rel_tol",
            0.01,
            min=0.0,
            max=10.0,
            step=0.001,
            round=False,
            tooltip="Relative tolerance: lower is more accurate and takes more evaluations (paper: 0.01-0.05).",
        ),
        Float("safety", 0.9, min=0.01, max=1.0, step=0.01, tooltip="Safety factor of the step-size update."),
        Float(
            "exponent",
            0.9,
            min=0.01,
            max=2.0,
            step=0.01,
            tooltip="Exponent r of the update h * E^-r: the paper's 0.9 for the SDE; with eta 0 (the ODE, "
            "whose error estimate shrinks as h^2) 0.5 avoids alternating rejections.",
        ),
        Float(
            "h_init",
            0.01,
            min=0.0001,
            max=1.0,
            step=0.001,
            round=False,
            tooltip="First step size, as a fraction of the noise range.",
        ),
        Float(
            "eta",
            1.0,
            min=0.0,
            max=1.0,
            step=0.01,
            tooltip="1: the reverse-time SDE (the paper); 0: the probability-flow ODE.",
        ),
        Float("s_noise", 1.0, min=0.0, max=2.0, step=0.01, tooltip="Scale of the SDE's noise."),
    )
    outputs = (Output("SAMPLER"),)

    def run(
        self, abs_tol: float, rel_tol: float, safety: float, exponent: float, h_init: float, eta: float, s_noise: float
    ) -> tuple:
        return (GottaGoFastSampler(abs_tol, rel_tol, safety, exponent, h_init, eta, s_noise),)


NODES = [SamplerGottaGoFast]
