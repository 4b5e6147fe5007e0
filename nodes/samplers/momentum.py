"""Momentum samplers against divergence artifacts: heavy ball (HB) and generalised heavy ball (GHVB).

Wizadwongsa, Chinchuthakun, Khungurn, Raj, Suwajanakorn, "Diffusion Sampling with Momentum for
Mitigating Divergence Artifacts", ICLR 2024 (arXiv 2307.11118).

High-order multistep samplers at few steps and high guidance scales produce divergence
artifacts (oversaturated blotches): their stability regions are small, and a large step with a
stiff, guidance-amplified derivative leaves them. The paper widens the stability region with
Polyak's heavy-ball momentum, a damped running average of the update direction, controlled by
``beta`` in (0, 1]: 1 is the plain sampler, smaller values damp more (the paper's Stable
Diffusion experiments use 0.9 and 0.8; 0.8 is Weft's default).

* **HB** averages the sampler's own update direction ``u_n`` (the Adams-Bashforth combination of
  the derivatives for PLMS, the DPM-Solver++(2M) combination of the denoised estimates):
  ``v_n = (1 - beta) v_(n-1) + beta u_n`` and the step uses ``v_n`` in place of ``u_n``. It
  stays convergent but only of first order.
* **GHVB** averages the raw model output first (``v_n = (1 - beta) v_(n-1) + beta f_n``) and
  then applies a multistep formula *to the averages* whose weights depend on ``beta`` so that
  the method keeps its order. The weights follow from ``f_n = v_n + (v_n - v_(n-1)) (1 -
  beta) / beta``: in backward differences ``∇`` the Adams-Bashforth operator ``sum_m gamma_m ∇^m``
  becomes ``sum_m (gamma_m + (1 - beta) / beta * gamma_(m-1)) ∇^m``, truncated at the order
  (:func:`ghvb_weights`; at ``beta = 1`` these are the Adams-Bashforth weights).

The bases (``beta = 1`` gives them exactly):

* **PLMS** (``plms_hb``, ``plms_ghvb``): the pseudo linear multistep method in k-diffusion's
  space, Adams-Bashforth of order 4 on the derivative ``d = (x - x0) / sigma`` (the noise
  prediction) with equal-step weights, starting with orders 1, 2, 3 while the history fills.
  This is the base the paper's code applies momentum to (no pseudo Runge-Kutta warm-up) and is
  Weft's and ComfyUI's ``ipndm``, whose step to sigma 0 lands on the clean estimate. ``plms_ghvb`` with order 4 and beta 0.8 is the paper's
  "GHVB 3.8".
* **DPM-Solver++(2M)** (``dpmpp_2m_hb``, ``dpmpp_2m_ghvb``): ComfyUI's ``dpmpp_2m`` (Lu et al.,
  arXiv 2211.01095), in log-sigma with the data prediction. HB follows the paper's code: the
  first-order first step and the final step to sigma 0 (which lands on the clean estimate) are
  unchanged, the velocity starts at the first second-order step. GHVB is the same construction
  for the variable-step 2M formula: with ``r`` the ratio of the previous to the current log
  step, the averaged estimates are combined as ``(1 + c) v_n - c v_(n-1)`` with ``c = 1/(2r) +
  (1 - beta) / beta`` (at ``beta = 1``, 2M's ``1/(2r)``).
"""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from nodes.api import Combo, Float, Node, Output

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

#: the sampler names (also ``SamplerMomentum``'s methods)
METHODS: tuple[str, ...] = ("dpmpp_2m_hb", "dpmpp_2m_ghvb", "plms_hb", "plms_ghvb")
#: the damping of the paper's Stable Diffusion experiments ("HB 0.8", "GHVB 3.8")
DEFAULT_MOMENTUM = 0.8
#: PLMS is Adams-Bashforth of order 4
PLMS_ORDER = 4


@cache
def adams_bashforth_gammas(count: int) -> tuple[Fraction, ...]:
    """The first ``count`` coefficients ``gamma_m`` of Adams-Bashforth in backward differences
    (1, 1/2, 5/12, 3/8, 251/720, ...), from ``sum_(j<=m) gamma_j / (m + 1 - j) = 1``."""
    gammas: list[Fraction] = []
    for m in range(count):
        gammas.append(1 - sum((g / (m + 1 - j) for j, g in enumerate(gammas)), Fraction(0)))
    return tuple(gammas)


@lru_cache(maxsize=64)
def ghvb_weights(order: int, beta: float) -> tuple[float, ...]:
    """GHVB's weights of ``v_n, v_(n-1), ...`` for ``order`` and momentum ``beta``.

    The backward-difference coefficients ``gamma_m + a * gamma_(m-1)`` with ``a = (1 - beta) /
    beta`` (see the module docstring) expanded into weights of the history: weight ``j`` is
    ``(-1)^j sum_(m>=j) C(m, j) d_m``. They sum to 1 for every ``beta``.
    """
    if order < 1:
        raise ValueError("order must be at least 1")
    if not 0 < beta <= 1:
        raise ValueError(f"momentum must be in (0, 1], got {beta}")
    gammas = adams_bashforth_gammas(order)
    a = Fraction(1 - Fraction(beta)) / Fraction(beta)
    d = [gammas[m] + (a * gammas[m - 1] if m else 0) for m in range(order)]
    return tuple(float((-1) ** j * sum(math.comb(m, j) * d[m] for m in range(j, order))) for j in range(order))


def adams_bashforth_weights(order: int) -> tuple[float, ...]:
    """Equal-step Adams-Bashforth weights of ``f_n, f_(n-1), ...`` (GHVB at ``beta = 1``)."""
    return ghvb_weights(order, 1.0)


def _combine(weights: tuple[float, ...], history: deque[torch.Tensor]) -> torch.Tensor:
    """``sum_j weights[j] * history[-1 - j]`` (newest first)."""
    out = history[-1] * weights[0]
    for j in range(1, len(weights)):
        out = out + history[-1 - j] * weights[j]
    return out


class MomentumSampler:
    """A SAMPLER running one of :data:`METHODS` with momentum ``beta`` in its own loop."""

    def __init__(self, method: str, momentum: float = DEFAULT_MOMENTUM) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if not 0 < float(momentum) <= 1:
            raise ValueError(f"momentum must be in (0, 1] (1 = no momentum), got {momentum}")
        self.method = method
        self.momentum = float(momentum)

    def __repr__(self) -> str:
        return f"MomentumSampler({self.method!r}, momentum={self.momentum})"

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        if self.method.startswith("plms"):
            return self._plms(run, generalised=self.method.endswith("ghvb"))
        return self._dpmpp_2m(run, generalised=self.method.endswith("ghvb"))

    def _plms(self, run: LoopRun, generalised: bool) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        beta = self.momentum
        weights = [
            ghvb_weights(k, beta) if generalised else adams_bashforth_weights(k) for k in range(1, PLMS_ORDER + 1)
        ]
        sigmas = [float(s) for s in run.sigmas]
        history: deque[torch.Tensor] = deque(maxlen=PLMS_ORDER)  # derivatives (HB) or their averages (GHVB)
        velocity: torch.Tensor | None = None
        x = run.x
        denoised = x
        for i in range(run.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised = run.denoise(x, sigma)
            derivative = (x - denoised) / sigma
            if generalised:
                velocity = derivative if velocity is None else torch.lerp(velocity, derivative, beta)
                history.append(velocity)
                direction = _combine(weights[len(history) - 1], history)
            else:
                history.append(derivative)
                slope = _combine(weights[len(history) - 1], history)
                velocity = slope if velocity is None else torch.lerp(velocity, slope, beta)
                direction = velocity
            # a step to sigma 0 lands on the clean estimate, as the base (ipndm) does
            x = denoised if sigma_next == 0 else x + direction * (sigma_next - sigma)
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)

    def _dpmpp_2m(self, run: LoopRun, generalised: bool) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        beta = self.momentum
        lag = (1 - beta) / beta  # GHVB's extra backward-difference weight
        sigmas = [float(s) for s in run.sigmas]
        x = run.x
        denoised = x
        previous: torch.Tensor | None = None  # last denoised (HB) or last average (GHVB)
        velocity: torch.Tensor | None = None
        h_last: float | None = None
        for i in range(run.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised = run.denoise(x, sigma)
            if sigma_next == 0:
                x = denoised  # the first-order step to 0 is the clean estimate
            else:
                h = math.log(sigma / sigma_next)
                if generalised:
                    average = denoised if previous is None else torch.lerp(previous, denoised, beta)
                    if previous is None or h_last is None:
                        combined = average
                    else:
                        c = h / (2 * h_last) + lag
                        combined = average * (1 + c) - previous * c
                    previous = average
                else:
                    if previous is None or h_last is None:
                        combined = denoised
                    else:
                        c = h / (2 * h_last)
                        second_order = denoised * (1 + c) - previous * c
                        velocity = second_order if velocity is None else torch.lerp(velocity, second_order, beta)
                        combined = velocity
                    previous = denoised
                ratio = sigma_next / sigma
                x = x * ratio + combined * (1 - ratio)
                h_last = h
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)


def named_sampler(name: str) -> MomentumSampler:
    """The SAMPLER for a momentum ``sampler_name``, with the default momentum."""
    return MomentumSampler(name, DEFAULT_MOMENTUM)


class SamplerMomentum(Node):
    category = "sampling/custom_sampling/samplers"
    description = (
        "Multistep samplers with heavy-ball momentum, against the divergence artifacts (oversaturated "
        "blotches) of few steps and high CFG (Wizadwongsa et al., 'Diffusion Sampling with Momentum for "
        "Mitigating Divergence Artifacts', ICLR 2024, arXiv 2307.11118). HB damps the sampler's update; "
        "GHVB damps the model output and keeps the method's order. Momentum 1 is the plain sampler "
        "(DPM-Solver++(2M), or PLMS = ipndm)."
    )
    inputs = (
        Combo(
            "method",
            list(METHODS),
            tooltip="Base sampler (DPM-Solver++(2M) or PLMS of order 4) and momentum "
            "kind (hb: heavy ball; ghvb: generalised heavy ball).",
        ),
        Float(
            "momentum",
            DEFAULT_MOMENTUM,
            min=0.01,
            max=1.0,
            step=0.01,
            tooltip="beta in (0, 1]: 1 = no momentum; lower damps more (the paper uses 0.9 and 0.8).",
        ),
    )
    outputs = (Output("SAMPLER"),)

    def run(self, method: str, momentum: float) -> tuple:
        return (MomentumSampler(method, momentum),)


NODES = [SamplerMomentum]
