"""UniPC (Zhao et al., NeurIPS 2023, arXiv 2302.04867), the ``uni_pc`` and ``uni_pc_bh2`` samplers,
as ComfyUI 0.8.0 runs them (``comfy/extra_samplers/uni_pc.py``, ``sample_unipc``).

diffusers' ``UniPCMultistepScheduler`` gives other pictures: it defaults to order 2, applies its
lower final orders only below 15 steps, and ends at 0 or at the training sigma_min, where ComfyUI
ends at sigma 0.001 with order 3. This stepper follows ComfyUI's choices, written from the paper.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .own_steppers import OwnStepper

if TYPE_CHECKING:
    import torch

    from .samplers import SamplerSpec


class UniPcStepper(OwnStepper):
    """UniPC (Zhao et al., NeurIPS 2023, arXiv 2302.04867) as ComfyUI runs it: multistep, data
    prediction, predictor UniP and corrector UniC of order 3 (lower for the first steps and the
    last two), ``B(h) = h`` (``uni_pc``, bh1) or ``e^h - 1`` (``uni_pc_bh2``).

    One model call per step. The call at ``sigma[j]`` sees the predicted sample; the step first
    corrects that sample with the call's estimate (UniC, no extra call), then predicts the next
    one (UniP); the last step only predicts. A schedule ending in 0 ends at sigma 0.001 instead
    (ComfyUI's choice: log-SNR steps are infinite at 0), and the run's result is the sample there.
    In VE form the update from the newest estimate ``m0`` is ``x' = r x - (e^-h - 1) m0 - B(h) *
    sum(rho_k D_k)`` with ``r = sigma' / sigma``, ``h`` the step in log-SNR (``log(1/r)``) and
    ``D_k`` the earlier estimates' divided differences in log-SNR (:func:`unipc_coefficients`).
    ``r`` and the log-SNRs come from the VP marginals in float32 (:func:`vp_marginals`).
    """

    MAX_ORDER = 3
    #: where a schedule ending in 0 ends instead (ComfyUI's ``sample_unipc``)
    FINAL_SIGMA = 1e-3
    stops_short_of_zero = True

    def __init__(
        self, spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None
    ) -> None:
        super().__init__(spec, scheduler_config, sigmas, seed)
        self.bh2 = spec.name == "uni_pc_bh2"
        targets = [float(v) for v in self.grid[: self.steps + 1]]
        if targets[-1] == 0:
            targets[-1] = self.FINAL_SIGMA
        self._targets = targets
        # ComfyUI's order: one below the step count, at most 3. A one-step run takes a first-order
        # step (ComfyUI's takes none and returns the starting sample, scaled).
        self._order = max(1, min(self.MAX_ORDER, self.steps - 1))
        self._estimates: list[tuple[int, Any]] = []  # (target index, clean estimate), newest last
        self._pending: tuple[Any, float, list[Any], list[float], Any] | None = None

    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        sigma = self._targets[j]
        estimate = self._x0(model_output, x, sigma)
        if self._pending is not None:  # UniC: correct the predicted sample the model just saw
            base, b_h, diffs, rhos_c, m0 = self._pending
            x = base - b_h * (_weighted(diffs, rhos_c[:-1]) + rhos_c[-1] * (estimate - m0))
        self._estimates.append((j, estimate))
        del self._estimates[: -self._order]
        k = j + 1  # this step ends at target k
        order = min(k, self._order, self.steps + 1 - k)
        return self._predict(x, order, k, corrector=k < self.steps)

    def _predict(self, x: torch.Tensor, order: int, k: int, corrector: bool) -> torch.Tensor:
        """UniP from ``x`` (at the newest estimate's sigma) to target ``k``; keeps what UniC
        needs to correct the result once the model has seen it."""
        used = self._estimates[-order:]
        m0 = used[-1][1]
        lambdas, ve = zip(*(vp_marginals(self._targets[i]) for i in (*(j for j, _ in used), k)), strict=True)
        c = unipc_coefficients(list(lambdas[:-1]), lambdas[-1], self.bh2)
        diffs = [(m - m0) / rk for (_, m), rk in zip(reversed(used[:-1]), c.rks, strict=False)]
        base = x * (ve[-1] / ve[-2]) - m0 * math.expm1(lambdas[-2] - lambdas[-1])
        self._pending = (base, c.b_h, diffs, c.rhos_c, m0) if corrector else None
        return base - c.b_h * _weighted(diffs, c.rhos_p) if c.rhos_p else base


def vp_marginals(sigma: float) -> tuple[float, float]:
    """``(lambda, sigma_vp / alpha)`` of a VE sigma: the log-SNR ``log(alpha / sigma_vp)`` and the VE
    sigma back, from ``alpha^2 = 1 / (1 + sigma^2)`` and ``sigma_vp^2 = 1 - alpha^2``.

    Evaluated in float32 as ComfyUI evaluates them: at its final sigma 0.001, ``sigma^2`` loses
    5 % in ``1 + sigma^2``, which moves the last step's weights by about 1 %; in float64 the
    latent would differ from ComfyUI's by up to 1e-3 where a soft inpainting mask mixes.
    """
    import torch

    s = torch.tensor(sigma, dtype=torch.float32)
    log_alpha = 0.5 * torch.log(1.0 / (s * s + 1.0))
    var = 1.0 - torch.exp(2.0 * log_alpha)
    return float(log_alpha - 0.5 * torch.log(var)), float(torch.sqrt(var) / torch.exp(log_alpha))


@dataclass(frozen=True)
class UniPcCoefficients:
    """One UniPC step's scalars: ``B(h)``, the log-SNR ratios ``rks`` of the earlier estimates,
    the predictor's and the corrector's weights (the corrector's last one is the new estimate's)."""

    b_h: float
    rks: list[float]
    rhos_p: list[float]
    rhos_c: list[float]


def unipc_coefficients(lambdas: list[float], lambda_next: float, bh2: bool) -> UniPcCoefficients:
    """The UniPC step's weights from the log-SNRs of the estimates it uses (newest last; their
    count is the order) to ``lambda_next``, in float64.

    With ``hh = -h`` (data prediction) and ``phi`` the exponential integrator's functions, row
    ``i`` of the order conditions is ``sum_k rho_k rk_k^(i-1) = i! hh phi_(i+1)(hh) / B(h)``
    (the paper's UniP-p / UniC-p). Order 2's predictor and order 1's corrector use the fixed
    ``rho = 1/2`` of the paper's code, as ComfyUI does.
    """
    import numpy as np

    order = len(lambdas)
    h = lambda_next - lambdas[-1]
    hh = -h
    rks = [(lam - lambdas[-1]) / h for lam in reversed(lambdas[:-1])] + [1.0]
    h_phi_1 = math.expm1(hh)
    b_h = math.expm1(hh) if bh2 else hh
    h_phi_k, factorial = h_phi_1 / hh - 1.0, 1.0
    rows, b = [], []
    for i in range(1, order + 1):
        rows.append([rk ** (i - 1) for rk in rks])
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1.0 / factorial
    matrix = np.array(rows)
    if order == 1:
        rhos_p, rhos_c = [], [0.5]
    else:
        rhos_p = [0.5] if order == 2 else np.linalg.solve(matrix[:-1, :-1], b[:-1]).tolist()
        rhos_c = np.linalg.solve(matrix, b).tolist()
    return UniPcCoefficients(b_h, rks[:-1], rhos_p, rhos_c)


def _weighted(terms: list[Any], weights: list[float]) -> Any:
    total: Any = 0.0
    for term, weight in zip(terms, weights, strict=False):
        total = total + term * weight
    return total
