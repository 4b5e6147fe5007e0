"""The base samplers the steering loops move particles with, in k-diffusion's sigma space.

A steering sampler cannot use the diffusers schedulers the ordinary loop drives: it needs to
step many particles at once and, after resampling, to reorder whatever history a multistep
method keeps (DPM-Solver++(2M)'s previous clean estimate) along with the particles. These are
the k-diffusion forms of three ComfyUI samplers, written on the guided denoiser a
:class:`~nodes.diffusion.loops.LoopRun` provides (``x = x0 + sigma * eps``):

* ``euler``: the probability-flow ODE's Euler step (ComfyUI's default);
* ``euler_ancestral``: Euler down to ``sigma_down``, then fresh noise up to the next sigma;
* ``dpmpp_2m``: DPM-Solver++(2M), the second-order multistep ODE solver.

With one particle each equals the same-named built-in sampler up to float rounding (the
tests hold them to it). The ODE
samplers are deterministic: Feynman-Kac steering then re-noises the copies a resampling makes
(:func:`.particles._renoise_copies`), as copies that retraced their parent would only prune.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

BASE_SAMPLERS = ("euler_ancestral", "euler", "dpmpp_2m")
STOCHASTIC = frozenset({"euler_ancestral"})

NoiseFn = Callable[["torch.Tensor"], "torch.Tensor"]


def ancestral_sigmas(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """(sigma_down, sigma_up) of an ancestral step: go down deterministically, add noise up."""
    if sigma_next == 0:
        return 0.0, 0.0
    up = min(sigma_next, eta * math.sqrt(max(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2, 0.0)))
    return math.sqrt(max(sigma_next**2 - up**2, 0.0)), up


class BaseStep(ABC):
    """One base sampler over a batch of particles. ``step`` moves every particle from
    ``sigmas[i]`` to ``sigmas[i + 1]`` given their clean estimates; ``select`` reorders the
    per-particle history after resampling (row ``r`` becomes old row ``rows[r]``)."""

    name = "base"
    stochastic = False

    def __init__(self, sigmas: torch.Tensor, noise: NoiseFn) -> None:
        self.sigmas = [float(s) for s in sigmas]
        self.noise = noise

    @abstractmethod
    def step(self, i: int, x: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
        """The sample after step ``i`` from ``x`` and the model's clean estimate ``denoised``."""

    def select(self, rows: torch.Tensor) -> None:  # noqa: B027  (a no-op by default, not abstract)
        """Nothing to reorder for single-step samplers."""


class EulerStep(BaseStep):
    name = "euler"

    def step(self, i: int, x: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
        sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
        return x + (x - denoised) / sigma * (sigma_next - sigma)


class EulerAncestralStep(BaseStep):
    name = "euler_ancestral"
    stochastic = True

    def step(self, i: int, x: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
        sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
        down, up = ancestral_sigmas(sigma, sigma_next)
        x = x + (x - denoised) / sigma * (down - sigma)
        # drawn on the last step too (times 0), as diffusers' scheduler does, so one particle
        # consumes the seeded generator exactly as the built-in euler_ancestral does
        return x + self.noise(x) * up


class DPMpp2MStep(BaseStep):
    """DPM-Solver++(2M) in log-sigma time ``t = -log(sigma)``: first order on the first step
    and on the last one to sigma 0 (as ComfyUI's and the built-in sampler)."""

    name = "dpmpp_2m"

    def __init__(self, sigmas: torch.Tensor, noise: NoiseFn) -> None:
        super().__init__(sigmas, noise)
        self.previous: torch.Tensor | None = None

    def step(self, i: int, x: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
        sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
        previous, self.previous = self.previous, denoised
        if sigma_next == 0:
            return denoised
        h = math.log(sigma) - math.log(sigma_next)
        estimate = denoised
        if previous is not None and i > 0:
            r = (math.log(self.sigmas[i - 1]) - math.log(sigma)) / h
            estimate = denoised * (1 + 1 / (2 * r)) - previous * (1 / (2 * r))
        return x * (sigma_next / sigma) - estimate * math.expm1(-h)

    def select(self, rows: torch.Tensor) -> None:  # noqa: B027  (a no-op by default, not abstract)
        if self.previous is not None:
            self.previous = self.previous[rows]


def make_base_step(name: str, sigmas: torch.Tensor, noise: NoiseFn) -> BaseStep:
    steps = {"euler": EulerStep, "euler_ancestral": EulerAncestralStep, "dpmpp_2m": DPMpp2MStep}
    if name not in steps:
        raise ValueError(
            f"base sampler {name!r} is not available for steering; choose one of {', '.join(BASE_SAMPLERS)}"
        )
    return steps[name](sigmas, noise)
