"""Steppers: one sampling run's state, advanced model call by model call by :func:`.sampling.sample`.

:class:`Stepper` holds what every sampler shares: the noise levels of the run (``grid``),
the latent parametrisation it steps in (VE or VP), the seeded generator and the clean
estimate for previews. Two kinds derive from it:

* :class:`DiffusersStepper`: a diffusers scheduler, configured from the model's training
  config, stepping through *our* sigmas (any schedule runs with any sampler).
* :class:`~.own_steppers.OwnStepper`: Weft's own update rules, for ComfyUI samplers no
  diffusers scheduler expresses.

Installing sigmas in a diffusers scheduler. No public API takes an arbitrary sigma list for
every scheduler class Weft uses, so :data:`KARRAS_HOOK` goes through a private method:

* every diffusers scheduler that offers ``use_karras_sigmas`` computes its sigmas with
  ``self._convert_to_karras(in_sigmas, ...)`` and then derives everything else (timesteps,
  Heun's interleaving) from the result. We enable that option and
  give the instance a ``_convert_to_karras`` that returns our schedule, so the scheduler's
  own ``set_timesteps`` does the class-specific bookkeeping. Heun takes only ``timesteps=``
  (training timesteps, from which it interpolates sigmas that are not ours). (UniPC, DEIS,
  DPM2 and DPM-Solver++(2M) are Weft's own steppers, ComfyUI's algorithms.)
* ``EulerDiscreteScheduler.set_timesteps(sigmas=...)`` is public, but it derives the
  timesteps from float32 log-sigmas where the hook's path uses float64. Euler keeps the
  hook. (A scheduler's timesteps only index its steps: the model is called at
  :meth:`.schedules.ModelSigmas.call_timestep` of each call's sigma, like every sampler's.)
* :data:`ATTRIBUTES`: Euler ancestral has neither the option nor a ``sigmas=`` argument; its
  ``sigmas`` and ``timesteps`` are set after ``set_timesteps`` (its ``step`` reads only those).

``pyproject.toml`` bounds diffusers to the minor version these were checked against, and
``tests/diffusion/test_stepper_sigmas.py`` checks, per sampler and schedule, that every
scheduler steps through exactly the sigmas asked for.

torch and diffusers are imported inside the functions; importing this module stays cheap.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .noise import step_noise_generator
from .schedules import model_sigmas

if TYPE_CHECKING:
    import torch

    from .samplers import SamplerSpec

#: how :class:`DiffusersStepper` installs the run's sigmas (see the module docstring)
KARRAS_HOOK = "karras_hook"
ATTRIBUTES = "attributes"


class Stepper(ABC):
    """One sampling run's stepping state; what :func:`.sampling.sample` reads and calls.

    ``grid`` is the full-step noise levels, always ending in 0; ``timesteps[j]`` is what the
    predictor receives at model call ``j`` (:meth:`.schedules.ModelSigmas.call_timestep` of
    ``call_sigmas[j]``; the UNet gets its whole timestep, ComfyUI's); ``calls`` is how many
    model calls the run makes (fewer than a full run's when the schedule stops above 0, as
    KSamplerAdvanced's ``return_with_leftover_noise`` asks); ``stages`` the model calls per step.
    ``finish_denoised``: the run ends on the model's clean estimate of its last step.
    """

    timesteps: Any
    calls: int
    #: the noise level of each model call, exactly (also between the stages of a Heun/DPM2 step)
    call_sigmas: list[float]
    finish_denoised: bool = False
    #: a schedule ending in 0 ends a little above it (UniPC: at 0.001, as ComfyUI's)
    stops_short_of_zero: bool = False

    def __init__(
        self, spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None
    ) -> None:
        import torch

        self.spec = spec
        self.vp = spec.space == "vp"
        self.stages = spec.stages
        sigmas = sigmas.detach().to("cpu", torch.float32).flatten()
        self.ends_at_zero = bool(sigmas[-1] == 0)
        self.grid = sigmas if self.ends_at_zero else torch.cat([sigmas, sigmas.new_zeros(1)])
        self.steps = len(sigmas) - 1
        self.seed = seed
        self._generator: torch.Generator | None = None
        self.prediction_type = scheduler_config.get("prediction_type", "epsilon")
        self.scheduler_config = scheduler_config
        self.ms = model_sigmas(scheduler_config)

    def generator_for(self, device: Any) -> torch.Generator | None:
        """The run's generator for per-step noise, on ``device`` (made on first use: the
        device is the sample's; :func:`.noise.step_noise_generator` says how it is seeded)."""
        if self._generator is None and self.seed is not None:
            self._generator = step_noise_generator(self.seed, device)
        return self._generator

    # The loop calls these once per model call; keep them lean.
    @abstractmethod
    def scale_input(self, x: torch.Tensor, j: int) -> torch.Tensor:
        """The UNet's input for call ``j`` from the sample ``x`` in the stepper's space."""

    @abstractmethod
    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        """The sample after model call ``j`` returned ``model_output`` for ``x``."""

    def sigma_of_call(self, j: int) -> float:
        """The full-step noise level the sample is at when model call ``j`` starts (approximate
        between the two stages of 2-stage samplers)."""
        return float(self.grid[j // self.stages])

    def initial_sample(self, latent: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Noise the (scaled) latent to the first sigma, in the stepper's space.

        Starting from the model's top noise level the noise is scaled by sqrt(1 + sigma^2)
        rather than sigma, as ComfyUI and diffusers' ``init_noise_sigma`` both do: at that
        level the latent is all noise, and this keeps the same seed giving the same image.
        """
        sigma = float(self.grid[0])
        at_top = sigma >= self.ms.sigma_max * (1 - 1e-5)
        x = latent + noise * (math.sqrt(1.0 + sigma * sigma) if at_top else sigma)
        return x / math.sqrt(1.0 + sigma * sigma) if self.vp else x

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """The final sample back to the scaled latent space (VP -> VE at the last sigma)."""
        if not self.vp:
            return x
        sigma = float(self.grid[self.completed_steps(self.calls)])
        return x * math.sqrt(1.0 + sigma * sigma)

    def completed_steps(self, calls_done: int) -> int:
        """How many full steps ``calls_done`` model calls complete."""
        if self.stages == 1:
            return calls_done
        return min((calls_done + 1) // 2, len(self.grid) - 1)

    def denoised(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        """The model's estimate of the clean (scaled) latent at call ``j``, for previews."""
        return self._x0(model_output, x, self.sigma_of_call(j))

    def _x0(self, model_output: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
        s2 = 1.0 + sigma * sigma
        x_ve = x * math.sqrt(s2) if self.vp else x
        if self.prediction_type == "v_prediction":
            return x_ve / s2 - model_output * (sigma / math.sqrt(s2))
        return x_ve - model_output * sigma


class DiffusersStepper(Stepper):
    """A diffusers scheduler stepping through the run's sigmas (``spec.scheduler`` names its class)."""

    def __init__(
        self, spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None
    ) -> None:
        import torch

        super().__init__(spec, scheduler_config, sigmas, seed)
        scheduler = _template(spec, json.dumps(dict(scheduler_config), sort_keys=True, default=list))
        _INSTALL[spec.sigmas_via](scheduler, self.grid, self.ms)
        scheduler.set_begin_index(0)
        self.scheduler = scheduler
        self.calls = len(scheduler.timesteps) if self.ends_at_zero else self.steps * self.stages
        # A scheduler that stops at a nonzero sigma instead of 0 (diffusers' multistep solvers
        # with final_sigmas_type "sigma_min") finishes with the last step's clean estimate.
        self.finish_denoised = self.ends_at_zero and float(scheduler.sigmas[-1]) != 0.0
        self.call_sigmas = _call_sigmas(scheduler, self.grid, self.calls, self.stages)
        # The scheduler's own (fractional) timesteps index its steps; the model is called at the
        # call's sigma by Weft's rule, as every other sampler (diffusers' would differ slightly).
        self.timesteps = self.ms.call_timestep(torch.tensor(self.call_sigmas, dtype=torch.float32))
        self._accepts_generator = _step_takes_generator(type(scheduler))

    def scale_input(self, x: torch.Tensor, j: int) -> torch.Tensor:
        if self.vp:
            return x
        return self.scheduler.scale_model_input(x, self.scheduler.timesteps[j])

    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        t = self.scheduler.timesteps[j]
        if self._accepts_generator:
            generator = self.generator_for(model_output.device)
            return self.scheduler.step(model_output, t, x, generator=generator, return_dict=False)[0]
        return self.scheduler.step(model_output, t, x, return_dict=False)[0]


def _call_sigmas(scheduler: Any, grid: torch.Tensor, calls: int, stages: int) -> list[float]:
    """The sigma each model call's input is scaled by (what ``scale_model_input`` reads).

    One call per step: the step's sigma. Heun interleaves its sigmas, so call ``j`` is at
    ``sigmas[j]`` (diffusers' own layout; ``tests/diffusion/test_stepper_sigmas.py`` checks it
    against the scaling). (DPM2, whose diffusers scheduler lays its midpoints out otherwise, is
    Weft's own stepper, :mod:`.dpm_steppers`.)
    """
    if stages == 1:
        return [float(grid[j]) for j in range(calls)]
    return [float(scheduler.sigmas[j]) for j in range(calls)]


def _install_through_karras_hook(scheduler: Any, grid: torch.Tensor, ms: Any) -> None:
    # Private diffusers API (``_convert_to_karras``); why, in the module docstring.
    own = grid[:-1]  # the scheduler appends the final sigma itself
    scheduler._convert_to_karras = _fixed_sigmas(own)
    scheduler.set_timesteps(len(own))


def _install_as_attributes(scheduler: Any, grid: torch.Tensor, ms: Any) -> None:
    # No public way for Euler ancestral (module docstring); its step reads these two only.
    own = grid[:-1]
    scheduler.set_timesteps(len(own))
    scheduler.sigmas = grid.clone()
    scheduler.timesteps = ms.sigma_to_t(own)


_INSTALL = {KARRAS_HOOK: _install_through_karras_hook, ATTRIBUTES: _install_as_attributes}


def _fixed_sigmas(sigmas: torch.Tensor) -> Any:
    values = sigmas.double().numpy().copy()

    def convert(in_sigmas: Any = None, num_inference_steps: int | None = None, **_: Any) -> Any:
        return values.copy()

    return convert


def _scheduler_class(name: str) -> type:
    import diffusers

    return getattr(diffusers, name)


@lru_cache(maxsize=64)
def _prototype(scheduler_name: str, spec_config_json: str, karras_hook: bool, config_json: str) -> Any:
    """A configured scheduler for a sampler and a model's training config, built once.

    ``from_config`` validates and registers the whole config each time (about a millisecond);
    a sampling run copies this prototype instead.
    """
    cls = _scheduler_class(scheduler_name)
    scheduler_config = json.loads(config_json)
    allowed = set(inspect.signature(cls.__init__).parameters)
    config = {k: v for k, v in scheduler_config.items() if k in allowed}
    config.update({k: v for k, v in json.loads(spec_config_json).items() if k in allowed})
    config["prediction_type"] = scheduler_config.get("prediction_type", "epsilon")
    # Our sigmas do all the spacing; these keep set_timesteps from rejecting the config.
    config.pop("timestep_spacing", None)
    config.pop("steps_offset", None)
    if karras_hook:
        config["use_karras_sigmas"] = True
    return cls.from_config(config)


def _template(spec: SamplerSpec, config_json: str) -> Any:
    # A shallow copy is enough: set_timesteps replaces every per-run array and buffer, and the
    # training arrays (betas, alphas_cumprod) are only read.
    key = json.dumps(dict(spec.config), sort_keys=True)
    return copy.copy(_prototype(spec.scheduler, key, spec.sigmas_via == KARRAS_HOOK, config_json))


@lru_cache(maxsize=32)
def _step_takes_generator(cls: type) -> bool:
    return "generator" in inspect.signature(cls.step).parameters
