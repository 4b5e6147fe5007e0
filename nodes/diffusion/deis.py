"""DEIS (Zhang & Chen, ICLR 2023, arXiv 2204.13902), the ``deis`` sampler, as ComfyUI 0.8.0 runs
it (``sample_deis``: the time-based Adams-Bashforth variant "tAB", order 3).

tAB-DEIS steps the probability-flow ODE on the noise prediction ``d = (x - D(x)) / sigma``
with the derivatives of the last steps, like linear multistep, but interpolates them in the
time ``t`` of a variance-preserving SDE with a linear ``beta(t)`` rather than in sigma. The
weight of an earlier derivative is the integral over the step of ``dsigma/dt`` times that
derivative's Lagrange basis polynomial in ``t``. ComfyUI fits the SDE to EDM's noise range
(sigma 0.002 to 80 for ``t`` from 0.001 to 1) whatever the model, and integrates with a
10,000-point sum; Weft does both the same way (:func:`deis_weights`), so the pictures are
ComfyUI's. The first step and a step to sigma 0 are Euler steps.

diffusers' ``DEISMultistepScheduler`` is another member of the family (an exponential
integrator in log-SNR) and rounds each sigma to a whole training timestep, which a schedule
with close first sigmas (``linear_quadratic``) cannot survive; Weft used it before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .own_steppers import OwnStepper

if TYPE_CHECKING:
    import torch

    from .samplers import SamplerSpec

MAX_ORDER = 3
#: points of the sum that approximates each weight's integral (ComfyUI's ``N``)
POINTS = 10_000
#: the VP SDE's fit: sigma ``SIGMA_MIN`` at time ``EPSILON``, ``SIGMA_MAX`` at time 1
SIGMA_MIN, SIGMA_MAX, EPSILON = 0.002, 80.0, 1e-3


class DeisStepper(OwnStepper):
    """tAB-DEIS of order 3 (module docstring): one model call a step, weights known up front."""

    def __init__(
        self, spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None
    ) -> None:
        super().__init__(spec, scheduler_config, sigmas, seed)
        self._weights = deis_weights([float(v) for v in self.grid[: self.steps + 1]], MAX_ORDER)
        self._derivatives: list[Any] = []  # newest last

    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        sigma, sigma_next = float(self.grid[j]), float(self.grid[j + 1])
        d = (x - self._x0(model_output, x, sigma)) / sigma
        weights = self._weights[j]
        if weights:
            x_next = x + d * weights[0]
            for k, weight in enumerate(weights[1:], start=1):
                x_next = x_next + self._derivatives[-k] * weight
        else:
            x_next = x + d * (sigma_next - sigma)
        self._derivatives.append(d)
        del self._derivatives[: -(MAX_ORDER - 1)]
        return x_next


def vp_time(sigma: float) -> float:
    """The VP SDE time of a VE sigma: ``alpha(t) = 1 / (1 + sigma^2)`` with
    ``log alpha(t) = -beta_d t^2 / 2 - beta_min t`` (the SDE fitted as in the module docstring)."""
    beta_min, beta_d = _betas()
    return (math.sqrt(beta_min**2 + 2.0 * beta_d * math.log1p(sigma * sigma)) - beta_min) / beta_d


def _betas() -> tuple[float, float]:
    """``(beta_min, beta_d)`` of the linear ``beta(t) = beta_min + beta_d t`` through the two fit points."""
    lo, hi = math.log1p(SIGMA_MIN**2), math.log1p(SIGMA_MAX**2)
    beta_d = 2.0 * (lo / EPSILON - hi) / (EPSILON - 1.0)
    return hi - 0.5 * beta_d, beta_d


def deis_weights(sigmas: list[float], max_order: int) -> list[list[float]]:
    """Per step, the weights of the current and earlier derivatives (newest first); empty for an
    Euler step (the first, and any step to sigma 0, where ``dsigma/dt`` is infinite).

    Weight ``k`` of a step of order ``p`` is ``sum(dsigma/dt * L_k) * dt / POINTS`` over
    ``POINTS`` evenly spaced times from the step's start to its end, both included, with ``L_k``
    the Lagrange basis polynomial through the last ``p`` steps' times that is 1 at the ``k``-th
    newest: ComfyUI's quadrature, kept for its pictures.
    """
    import numpy as np

    beta_min, beta_d = _betas()
    times = [vp_time(s) for s in sigmas]
    table: list[list[float]] = []
    for i in range(len(sigmas) - 1):
        order = min(i + 1, max_order)
        if order == 1 or sigmas[i + 1] <= 0:
            table.append([])
            continue
        taus = np.linspace(times[i], times[i + 1], POINTS)
        alpha = np.exp(-0.5 * beta_d * taus**2 - beta_min * taus)
        dsigma = 0.5 * (beta_d * taus + beta_min) / np.sqrt(alpha * (1.0 - alpha))
        nodes = [times[i - k] for k in range(order)]
        row = []
        for k in range(order):
            basis = np.ones_like(taus)
            for m in range(order):
                if m != k:
                    basis = basis * (taus - nodes[m]) / (nodes[k] - nodes[m])
            row.append(float(np.sum(dsigma * basis) * (times[i + 1] - times[i]) / POINTS))
        table.append(row)
    return table
