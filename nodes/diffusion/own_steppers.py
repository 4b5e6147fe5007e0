"""Weft's own steppers: ComfyUI samplers that no diffusers scheduler expresses.

diffusers' ``LMSDiscreteScheduler`` needs scipy (not a Weft dependency); single-step
ancestral DPM-Solver++, iPNDM, DDPM between arbitrary noise levels and LCM's plain
re-noising do not exist there. Each is a small :class:`OwnStepper` in k-diffusion's VE space
(``x = x0 + sigma * eps``), driven by the same loop as the diffusers-backed samplers. ComfyUI's
UniPC, DEIS, DPM2 and DPM-Solver++(2M), whose diffusers namesakes give other pictures, have
modules of their own (:mod:`.unipc`, :mod:`.deis`, :mod:`.dpm_steppers`; :data:`SOLVER_STEPPERS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .noise import step_noise
from .steppers import Stepper

if TYPE_CHECKING:
    import torch

    from .samplers import SamplerSpec

LMS_ORDER = 4
#: iPNDM's Adams-Bashforth weights for the current and up to three previous derivatives
IPNDM_WEIGHTS = ((1.0,), (1.5, -0.5), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))


def own_stepper(
    spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None
) -> OwnStepper:
    """The stepper of an own sampler (``spec.scheduler == "own"``); ``_gpu`` names share theirs."""
    name = spec.name.removesuffix("_gpu")
    cls = OWN_STEPPERS.get(name)
    if cls is None:
        import importlib

        module, _, attribute = SOLVER_STEPPERS[name].partition(":")
        cls = getattr(importlib.import_module(module, __package__), attribute)
    return cls(spec, scheduler_config, sigmas, seed)


class OwnStepper(Stepper):
    """A stepper whose update rule is ours: one model call per step at the step's sigma,
    unless a subclass lays out its calls otherwise (:meth:`_call_sigmas`)."""

    def __init__(
        self, spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None
    ) -> None:
        import torch

        super().__init__(spec, scheduler_config, sigmas, seed)
        if self.vp:
            raise ValueError(f"sampler {spec.name!r}: Weft's own steppers step in VE space only")
        #: the noise level of each model call (exact, also between stages)
        self.call_sigmas = self._call_sigmas([float(v) for v in self.grid])
        self.timesteps = self.ms.call_timestep(torch.tensor(self.call_sigmas, dtype=torch.float32))
        self.calls = len(self.call_sigmas)

    def _call_sigmas(self, grid: list[float]) -> list[float]:
        return grid[: self.steps]

    def scale_input(self, x: torch.Tensor, j: int) -> torch.Tensor:
        sigma = self.call_sigmas[j]
        return x / math.sqrt(1.0 + sigma * sigma)

    def _noise_like(self, x: torch.Tensor) -> torch.Tensor:
        return step_noise(x, self.generator_for(x.device))


class TwoStageStepper(OwnStepper):
    """DPM-Solver++(2S) ancestral (``dpmpp_2s_ancestral``).

    Two model calls per step (the second at the geometric midpoint of sigma and the ancestral
    step's sigma_down), one for a final step to 0, which is a plain Euler step to the clean
    estimate. Its SDE relative ``dpmpp_sde`` draws Brownian-tree noise in a loop of its own
    (``nodes/samplers/dpmpp_sde.py``).
    """

    def __init__(
        self, spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None
    ) -> None:
        self._roles: list[tuple[int, int]] = []  # (step, stage) of each model call
        super().__init__(spec, scheduler_config, sigmas, seed)

    def _call_sigmas(self, grid: list[float]) -> list[float]:
        calls = []
        for i in range(self.steps):
            sigma, sigma_next = grid[i], grid[i + 1]
            calls.append(sigma)
            self._roles.append((i, 0))
            if sigma_next > 0:
                calls.append(math.sqrt(sigma * _ancestral(sigma, sigma_next)[0]))
                self._roles.append((i, 1))
        return calls

    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        i, stage = self._roles[j]
        sigma, sigma_next = float(self.grid[i]), float(self.grid[i + 1])
        if stage == 0:
            d = self._x0(model_output, x, sigma)
            if sigma_next == 0:
                return d
            self._start, self._d = x, d
            down = _ancestral(sigma, sigma_next)[0]
            ratio = math.sqrt(down / sigma)  # exp(-h/2) with h = log(sigma / down)
            return d + ratio * (x - d)
        x0, d = self._start, self._d
        d2 = self._x0(model_output, x, self.call_sigmas[j])
        down, up = _ancestral(sigma, sigma_next)
        out = d2 + (down / sigma) * (x0 - d2)
        return out + self._noise_like(out) * up if up > 0 else out


class LmsStepper(OwnStepper):
    """Linear multistep (order 4) in sigma space; its weights are all known before the loop.

    A step to sigma 0 returns the clean estimate (ComfyUI's ``sample_lms``, 0.8.0) rather than
    extrapolating the derivatives over that last, longest step.
    """

    def __init__(
        self, spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None
    ) -> None:
        super().__init__(spec, scheduler_config, sigmas, seed)
        self._derivatives: list[Any] = []
        self._lms_coefficients = lms_coefficients([float(v) for v in self.grid], LMS_ORDER)

    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        sigma = float(self.grid[j])
        denoised = self.denoised(model_output, j, x)
        if float(self.grid[j + 1]) == 0:
            return denoised
        history = self._derivatives
        history.append((x - denoised) / sigma)
        if len(history) > LMS_ORDER:
            history.pop(0)
        for k, weight in enumerate(self._lms_coefficients[j]):
            x = x + weight * history[-1 - k]
        return x


class IpndmStepper(OwnStepper):
    """Improved PNDM: Adams-Bashforth up to order 4 with equal-step weights; a step to sigma 0
    returns the clean estimate (ComfyUI's ``sample_ipndm``, 0.8.0)."""

    def __init__(
        self, spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None
    ) -> None:
        super().__init__(spec, scheduler_config, sigmas, seed)
        self._derivatives: list[Any] = []

    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        sigma, sigma_next = float(self.grid[j]), float(self.grid[j + 1])
        denoised = self._x0(model_output, x, sigma)
        if sigma_next == 0:
            return denoised
        d = (x - denoised) / sigma
        history = self._derivatives
        weights = IPNDM_WEIGHTS[min(len(history), 3)]
        slope = d * weights[0]
        for k, weight in enumerate(weights[1:]):
            slope = slope + history[-1 - k] * weight
        history.append(d)
        if len(history) > 3:
            history.pop(0)
        return x + slope * (sigma_next - sigma)


class DdpmStepper(OwnStepper):
    """DDPM ancestral sampling between arbitrary noise levels."""

    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        """The DDPM posterior step from ``sigma`` to ``sigma_next`` (in VP form, then back)."""
        sigma, sigma_next = float(self.grid[j]), float(self.grid[j + 1])
        eps = (x - self._x0(model_output, x, sigma)) / sigma
        abar, abar_next = 1.0 / (sigma * sigma + 1.0), 1.0 / (sigma_next * sigma_next + 1.0)
        alpha = abar / abar_next
        mean = (x * math.sqrt(abar) - eps * ((1.0 - alpha) / math.sqrt(1.0 - abar))) / math.sqrt(alpha)
        if sigma_next == 0:
            return mean
        spread = math.sqrt((1.0 - alpha) * (1.0 - abar_next) / (1.0 - abar))
        return (mean + self._noise_like(mean) * spread) / math.sqrt(abar_next)


class LcmStepper(OwnStepper):
    """Latent consistency: denoise, then re-noise to the next sigma."""

    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        x0 = self.denoised(model_output, j, x)
        sigma_next = float(self.grid[j + 1])
        if sigma_next == 0:
            return x0
        return x0 + self._noise_like(x0) * sigma_next


#: own sampler name (without ``_gpu``) -> its stepper class
OWN_STEPPERS: dict[str, type[OwnStepper]] = {
    "dpmpp_2s_ancestral": TwoStageStepper,
    "lms": LmsStepper,
    "ipndm": IpndmStepper,
    "ddpm": DdpmStepper,
    "lcm": LcmStepper,
}

#: own samplers whose stepper has a module of its own (imported on first use): name -> "module:class"
SOLVER_STEPPERS = {
    "uni_pc": ".unipc:UniPcStepper",
    "uni_pc_bh2": ".unipc:UniPcStepper",
    "deis": ".deis:DeisStepper",
    "dpm_2": ".dpm_steppers:Dpm2Stepper",
    "dpm_2_ancestral": ".dpm_steppers:Dpm2Stepper",
    "dpmpp_2m": ".dpm_steppers:Dpmpp2MStepper",
}


def _ancestral(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """(sigma_down, sigma_up) of an ancestral step: go down deterministically, add fresh noise up."""
    if sigma_to == 0:
        return 0.0, 0.0
    up = min(sigma_to, eta * math.sqrt(max(sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2, 0.0)))
    return math.sqrt(max(sigma_to**2 - up**2, 0.0)), up


def lms_coefficients(sigmas: list[float], order: int) -> list[list[float]]:
    """Per step ``i``, the weights of the last derivatives in the linear multistep update.

    Weight ``k`` is the integral from ``sigma[i]`` to ``sigma[i+1]`` of the Lagrange basis
    polynomial through the last ``min(i+1, order)`` sigmas that is 1 at ``sigma[i-k]``;
    the schedule is known up front, so they are all computed before the loop.
    """
    import numpy as np

    table = []
    for i in range(len(sigmas) - 1):
        used = min(i + 1, order)
        row = []
        for k in range(used):
            poly = np.poly1d([1.0])
            for m in range(used):
                if m != k:
                    poly = poly * np.poly1d([1.0, -sigmas[i - m]]) / (sigmas[i - k] - sigmas[i - m])
            integral = poly.integ()
            row.append(float(integral(sigmas[i + 1]) - integral(sigmas[i])))
        table.append(row)
    return table
