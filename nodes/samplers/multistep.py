"""Multistep samplers in sigma: variable-step iPNDM, LMS of any order, gradient estimation.

All three step the probability-flow ODE ``dx/dsigma = d = (x - D(x)) / sigma`` (``D``: the guided
clean estimate) with the derivatives of earlier steps, one model call a step.

* ``ipndm_v``: iPNDM with variable step sizes, from the code of Zhou, Chen, Wang, Yan, Li,
  "Fast ODE-based Sampling for Diffusion Models in Around 5 Steps", CVPR 2024 (arXiv
  2312.00094), as ComfyUI runs it (``sample_ipndm_v``). Orders 1 and 2 are variable-step
  Adams-Bashforth; orders 3 and 4 add corrections ``c_3 * Delta_3`` and ``c_4 * Delta_4`` whose
  weights reduce to Adams-Bashforth's on uniform steps for order 3. The published order-4
  weights carry a further ``p (u - q) d_(n-3)`` (zero on uniform steps, so they do not sum to 1
  on uneven ones, and at order 4 on uniform steps they are (57, -65, 43, -11) / 24, not
  Adams-Bashforth's (55, -59, 37, -9) / 24); Weft keeps them so the pictures are ComfyUI's.
  A step to sigma 0 lands on the clean estimate.
* LMS (SamplerLMS): k-diffusion's linear multistep method, the variable-step Adams-Bashforth
  method of the chosen order: each weight is the integral over the step of a Lagrange basis
  polynomial through the last sigmas (Gauss-Legendre quadrature on the product form, exact for
  these degrees and stable at high order; ComfyUI integrates numerically with scipy). A step to
  sigma 0 lands on the clean estimate, as ComfyUI 0.8.0's ``sample_lms`` does.
* ``gradient_estimation`` (and ``_cfg_pp``): Permenter and Yuan, "Interpreting and Improving
  Diffusion Models from an Optimization Perspective", ICML 2024 (arXiv 2306.04848). Denoising is
  approximately gradient descent on the distance to the data manifold, and the noise prediction
  is a noisy gradient; the sampler uses ``gamma d_n + (1 - gamma) d_(n-1)`` (``gamma = 2``) in
  place of ``d_n`` after the first step, a momentum-like correction of the gradient estimate
  (the paper's Algorithm 2). The CFG++ variant re-noises with the unconditional estimate.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from nodes.api import Int, Node, Output

from .ancestral import _estimates

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

#: ComfyUI's defaults
IPNDM_V_ORDER = 4
GE_GAMMA = 2.0


def ipndm_v_weights(steps: list[float]) -> list[float]:
    """The published variable-step iPNDM weights of ``d_n, d_(n-1), ...`` for the step
    ``steps[0]`` (``h_n = sigma_(n+1) - sigma_n``) after the earlier steps ``steps[1:]``
    (``h_(n-1)``, ...): the order is ``len(steps)`` (1 to 4)."""
    order = len(steps)
    if order == 1:
        return [1.0]
    h, h1 = steps[0], steps[1]
    r = h / h1
    weights = [1 + r / 2, -r / 2]  # variable-step Adams-Bashforth 2
    if order == 2:
        return weights
    h2 = steps[2]
    q = h1 / h2
    c3 = (1 - h * h / (3 * h1 * (h1 + h2))) / 2
    weights = [weights[0] + c3, weights[1] - (1 + q) * c3, q * c3]  # + c3 ((d0 - d1) - q (d1 - d2))
    if order == 3:
        return weights
    h3 = steps[3]
    u = h2 / h3
    p = h1 * (h1 + h2) / (h2 * (h2 + h3))
    span = h + h1
    c4 = ((1 - h / (3 * span)) / 2 + (1 - h / (2 * span)) * h / (6 * (span + h2))) * (
        h * span * (span + h2) / (h1 * (h1 + h2) * (h1 + h2 + h3))
    )
    return [weights[0] + c4, weights[1] - (1 + q + p) * c4, weights[2] + (q + p * (1 + u)) * c4, -p * q * c4]


class IpndmVSampler:
    """``ipndm_v`` (module docstring)."""

    def __init__(self, max_order: int = IPNDM_V_ORDER) -> None:
        if not 1 <= int(max_order) <= 4:
            raise ValueError(f"ipndm_v: max_order must be 1 to 4, got {max_order}")
        self.max_order = int(max_order)

    def __repr__(self) -> str:
        return f"IpndmVSampler(max_order={self.max_order})"

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = [float(s) for s in run.sigmas]
        history: deque[torch.Tensor] = deque(maxlen=self.max_order - 1)  # newest last
        x = denoised = run.x
        for i in range(run.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised = run.denoise(x, sigma)
            d = (x - denoised) / sigma
            if sigma_next == 0:
                x = denoised
            else:
                order = min(self.max_order, i + 1)
                steps = [sigmas[i + 1 - k] - sigmas[i - k] for k in range(order)]
                while order > 1 and 0 in steps[1:order]:  # a repeated sigma: no divided differences
                    order -= 1
                weights = ipndm_v_weights(steps[:order])
                slope = d * weights[0]
                for k, weight in enumerate(weights[1:]):
                    slope = slope + history[-1 - k] * weight
                x = x + slope * (sigma_next - sigma)
            history.append(d)
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)


def lagrange_step_weights(sigmas: list[float], i: int, order: int) -> list[float]:
    """LMS weights of ``d_i, d_(i-1), ...`` for the step ``sigmas[i] -> sigmas[i + 1]``: the
    integrals of the Lagrange basis polynomials through ``sigmas[i], ..., sigmas[i - order + 1]``."""
    import numpy as np

    nodes = [sigmas[i - k] for k in range(order)]
    a, b = sigmas[i], sigmas[i + 1]
    points, quad = np.polynomial.legendre.leggauss(order // 2 + 1)  # exact up to degree order + 1
    taus = (b - a) / 2 * points + (b + a) / 2
    weights = []
    for k in range(order):
        basis = np.ones_like(taus)
        for m in range(order):
            if m != k:
                basis = basis * (taus - nodes[m]) / (nodes[k] - nodes[m])
        weights.append(float((b - a) / 2 * np.dot(quad, basis)))
    return weights


class LmsSampler:
    """k-diffusion's linear multistep method of order ``order`` (module docstring)."""

    def __init__(self, order: int = 4) -> None:
        if int(order) < 1:
            raise ValueError(f"LMS: order must be at least 1, got {order}")
        self.order = int(order)

    def __repr__(self) -> str:
        return f"LmsSampler(order={self.order})"

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = [float(s) for s in run.sigmas]
        history: deque[torch.Tensor] = deque(maxlen=self.order)  # newest last
        x = denoised = run.x
        for i in range(run.steps):
            sigma = sigmas[i]
            denoised = run.denoise(x, sigma)
            history.append((x - denoised) / sigma)
            if sigmas[i + 1] == 0:  # the last step returns the clean estimate, as ComfyUI's
                x = denoised
            else:
                for k, weight in enumerate(lagrange_step_weights(sigmas, i, min(i + 1, self.order))):
                    x = x + history[-1 - k] * weight
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)


class GradientEstimationSampler:
    """``gradient_estimation`` (module docstring); CFG++ when ``cfg_pp``."""

    def __init__(self, gamma: float = GE_GAMMA, cfg_pp: bool = False) -> None:
        self.gamma, self.cfg_pp = float(gamma), bool(cfg_pp)
        self.needs_uncond = self.cfg_pp

    def __repr__(self) -> str:
        return f"GradientEstimationSampler(gamma={self.gamma}, cfg_pp={self.cfg_pp})"

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = [float(s) for s in run.sigmas]
        x = denoised = run.x
        previous: torch.Tensor | None = None
        for i in range(run.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised, renoise = _estimates(run, x, sigma, self.cfg_pp)
            d = (x - renoise) / sigma
            dt = sigma_next - sigma
            if sigma_next == 0:
                x = denoised
            else:
                x = denoised + d * sigma_next if self.cfg_pp else x + d * dt
                if previous is not None:
                    x = x + (d - previous) * ((self.gamma - 1) * dt)
            previous = d
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)


def named_sampler(name: str) -> Any:
    """The SAMPLER of one of this module's ``sampler_name`` values, with ComfyUI's defaults."""
    if name == "ipndm_v":
        return IpndmVSampler()
    if name in ("gradient_estimation", "gradient_estimation_cfg_pp"):
        return GradientEstimationSampler(GE_GAMMA, cfg_pp=name.endswith("_cfg_pp"))
    raise ValueError(f"not a multistep sampler name: {name!r}")


class SamplerLMS(Node):
    category = "sampling/custom_sampling/samplers"
    description = (
        "Linear multistep (ComfyUI's lms, variable-step Adams-Bashforth in sigma) of a chosen order; "
        "lower orders while the history fills."
    )
    inputs = (Int("order", 4, min=1, max=100, tooltip="How many past derivatives each step uses."),)
    outputs = (Output("SAMPLER"),)

    def run(self, order: int) -> tuple:
        return (LmsSampler(order),)


NODES = [SamplerLMS]
