"""A stand-in for :class:`nodes.diffusion.loops.LoopRun` whose model is exact for Gaussian data.

For data ``N(0, v)`` the ideal denoiser is ``D(x, sigma) = x v / (v + sigma^2)`` and the
probability-flow ODE has the closed-form solution ``x(sigma) = x(sigma_0) sqrt((v + sigma^2) /
(v + sigma_0^2))``: solvers can be checked against the exact answer, in float64, in
milliseconds, with no UNet (whose timestep interpolation makes its ODE only piecewise smooth).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import torch


class GaussianRun:
    def __init__(
        self, sigmas: list[float], variance: float = 0.5, shape: tuple[int, ...] = (2, 4, 8, 8), seed: int = 0
    ) -> None:
        self.sigmas = torch.tensor(sigmas, dtype=torch.float64)
        self.variance = variance
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(shape, generator=g, dtype=torch.float64) * math.sqrt(variance + sigmas[0] ** 2)
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.model = SimpleNamespace(scheduler_config={})
        self.model_calls = 0
        self.progress: list[tuple[int, int]] = []

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def denoise(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        self.model_calls += 1
        return x * (self.variance / (self.variance + float(sigma) ** 2))

    def exact(self, sigma: float) -> torch.Tensor:
        """The ODE's solution at ``sigma`` from the starting sample."""
        s0 = float(self.sigmas[0])
        return self.x * math.sqrt((self.variance + sigma**2) / (self.variance + s0**2))

    def noise_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self.generator, dtype=x.dtype)

    def step_done(
        self, step: int, x: torch.Tensor, denoised: Any = None, total: int | None = None, sigma: float | None = None
    ) -> torch.Tensor:
        self.progress.append((step, self.steps if total is None else total))
        return x

    def finish(self, x: torch.Tensor, denoised: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, denoised


def relative_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    return float((x - reference).norm() / reference.norm())
