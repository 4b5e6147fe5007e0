"""``dpm_2``, ``dpm_2_ancestral`` and ``dpmpp_2m`` in sigma space, as ComfyUI 0.8.0 runs them.

diffusers' KDPM2 and DPM-Solver multistep schedulers, which Weft used before, call the UNet at
timesteps rounded to whole numbers (KDPM2: its first calls') and (DPM-Solver) take a first-order
penultimate step on short runs, so on the same denoiser the same seed gave another latent than
ComfyUI's algorithm (dpmpp_2m: about 1e-3 of the latent's scale; dpm_2: a few 1e-5). These
steppers follow the published rules as k-diffusion writes them, at the exact sigmas of the
schedule, each model call at ComfyUI's whole timestep for its sigma like every Weft sampler's
(:meth:`.schedules.ModelSigmas.call_timestep`):

* **DPM2** (``dpm_2``): Karras et al. 2022 (arXiv 2206.00364), Algorithm 2 with DPM-Solver-2's
  midpoint (Lu et al. 2022, arXiv 2206.00927): an Euler step to the log-midpoint
  ``sqrt(sigma * sigma')``, the model there, and the full step with the midpoint's derivative.
  A step to 0 is a plain Euler step (it lands on the clean estimate). No churn (ComfyUI's
  KSampler default).
* **DPM2 ancestral** (``dpm_2_ancestral``): the same step down to ``sigma_down`` followed by
  ``sigma_up`` of fresh noise (k-diffusion's ``get_ancestral_step``, eta 1), drawn from the run's
  generator after the second call of each step (ComfyUI's ``default_noise_sampler``: seed + 1 on
  the CPU, one draw shaped like the sample per step, none in the step to 0).
* **DPM-Solver++(2M)** (``dpmpp_2m``): Lu et al. 2022 (arXiv 2211.01095), Algorithm 2 in
  ``lambda = -log(sigma)`` with the data prediction: first order on the first step and in the
  step to 0 (which lands on the clean estimate), otherwise the second-order combination
  ``(1 + 1/2r) D - (1/2r) D_prev`` of the last two estimates, ``r`` the ratio of the two steps.

KSampler drops the last nonzero sigma of ``dpm_2``'s and ``dpm_2_ancestral``'s schedules
(:data:`.samplers.DISCARD_PENULTIMATE_SIGMA_SAMPLERS`); the steppers take the schedule as given.
A repeated sigma (a zero-length step) leaves the sample as it is (ComfyUI's ``dpmpp_2m`` gives
NaN on the step after one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .own_steppers import OwnStepper, _ancestral

if TYPE_CHECKING:
    import torch

    from .samplers import SamplerSpec


class Dpm2Stepper(OwnStepper):
    """DPM2, ancestral for ``dpm_2_ancestral`` (module docstring): two model calls a step, one
    for a step that ends at 0."""

    def __init__(
        self, spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None
    ) -> None:
        self.ancestral = spec.name.startswith("dpm_2_ancestral")
        self._roles: list[tuple[int, int]] = []  # (step, stage) of each model call
        self._targets: list[tuple[float, float]] = []  # per step: (where the solver lands, noise added)
        super().__init__(spec, scheduler_config, sigmas, seed)
        self._start: Any = None

    def _call_sigmas(self, grid: list[float]) -> list[float]:
        calls = []
        for i in range(self.steps):
            sigma, sigma_next = grid[i], grid[i + 1]
            target = _ancestral(sigma, sigma_next) if self.ancestral else (sigma_next, 0.0)
            self._targets.append(target)
            calls.append(sigma)
            self._roles.append((i, 0))
            if target[0] > 0:
                calls.append(math.sqrt(sigma * target[0]))  # the log-midpoint
                self._roles.append((i, 1))
        return calls

    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        i, stage = self._roles[j]
        sigma = float(self.grid[i])
        down, up = self._targets[i]
        if stage == 0:
            d = (x - self._x0(model_output, x, sigma)) / sigma
            if down == 0:
                return x + d * (down - sigma)  # Euler to 0: the clean estimate
            self._start = x
            return x + d * (self.call_sigmas[j + 1] - sigma)
        mid = self.call_sigmas[j]
        d_mid = (x - self._x0(model_output, x, mid)) / mid
        x = self._start + d_mid * (down - sigma)
        self._start = None
        if self.ancestral:  # drawn even when up is 0 (a repeated sigma), so the next draws stay in step
            x = x + self._noise_like(x) * up
        return x


class Dpmpp2MStepper(OwnStepper):
    """DPM-Solver++(2M) (module docstring): one model call a step."""

    def __init__(
        self, spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None
    ) -> None:
        super().__init__(spec, scheduler_config, sigmas, seed)
        self._previous: Any = None  # the last step's clean estimate
        self._previous_h = 0.0  # and its step length in lambda

    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        sigma, sigma_next = float(self.grid[j]), float(self.grid[j + 1])
        denoised = self._x0(model_output, x, sigma)
        previous, previous_h = self._previous, self._previous_h
        self._previous = denoised
        if sigma_next == 0:
            return denoised
        h = math.log(sigma / sigma_next)
        self._previous_h = h
        if h == 0:
            return x
        if previous is not None and previous_h > 0:
            half_over_r = h / (2.0 * previous_h)  # 1 / (2r), r = h_last / h
            denoised = denoised * (1.0 + half_over_r) - previous * half_over_r
        return x * (sigma_next / sigma) - denoised * math.expm1(-h)
