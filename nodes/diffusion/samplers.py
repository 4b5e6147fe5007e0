"""ComfyUI's ``sampler_name`` and ``scheduler`` values, expressed with diffusers schedulers.

Two halves, like ComfyUI's KSampler widgets:

* **Sigma schedules** (``scheduler``): :func:`compute_sigmas` turns a model's training noise
  schedule and a step count into a descending tensor of sigmas ending in 0 (ComfyUI's
  SIGMAS convention: k-diffusion's "variance exploding" noise levels).
* **Samplers** (``sampler_name``): :class:`SamplerSpec` names a diffusers scheduler class
  and its settings. :meth:`SamplerSpec.stepper` builds the scheduler from the model's
  training config and installs *our* sigmas in it, so any schedule runs with any sampler.

Installing sigmas: every diffusers scheduler that offers ``use_karras_sigmas`` computes
its sigmas with ``self._convert_to_karras(in_sigmas, ...)`` and then derives everything
else (timesteps, Heun/KDPM2 interleaving, multistep buffers) from the result. We enable
that option and give the instance a ``_convert_to_karras`` that returns our schedule, so
the scheduler's own ``set_timesteps`` does the class-specific bookkeeping. Schedulers
without the option (Euler ancestral) get their two arrays set directly.

A few ComfyUI samplers have no diffusers scheduler that fits (``lms`` needs scipy there;
``dpmpp_2s_ancestral``, ``dpmpp_sde`` and ``lcm``'s plain re-noising do not exist): they
are small steppers of our own (``scheduler="own"``) driven by the same loop.

Samplers that need a loop of their own (adaptive step size, momentum) are listed in
:data:`LOOP_SAMPLERS` by name and built on demand from ``nodes/samplers/``;
:func:`resolve_sampler` turns any name into its SAMPLER.

Names Weft cannot express are absent from the combo lists; :data:`UNSUPPORTED_SAMPLERS`
and :data:`UNSUPPORTED_SCHEDULERS` say why, and the sampling nodes put that reason in the
validation error.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: ComfyUI scheduler names Weft computes, in ComfyUI's order.
SCHEDULER_NAMES: tuple[str, ...] = (
    "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal", "kl_optimal",
)
UNSUPPORTED_SCHEDULERS: dict[str, str] = {
    "linear_quadratic": "it is a schedule for flow-matching video models, not the SD families Weft runs",
    "align_your_steps": "it needs the AYS tables of a specific model; use karras or exponential",
}


@dataclass(frozen=True)
class SamplerSpec:
    """A ComfyUI sampler name realised as a diffusers scheduler class and its settings.

    ``space`` says which latent parametrisation the scheduler steps in: ``"ve"`` (k-diffusion
    style, ``x = x0 + sigma * eps``; the scheduler scales the model input) or ``"vp"``
    (DDPM style, ``x = alpha * x0 + sigma_t * eps`` with ``alpha = 1/sqrt(1 + sigma^2)``).
    ``stages`` is the number of model calls per step (2 for Heun and DPM2).
    """

    name: str
    scheduler: str
    config: Mapping[str, Any] = field(default_factory=dict)
    space: str = "ve"
    stages: int = 1
    hook: bool = True  # install sigmas through the _convert_to_karras hook (else set directly)
    note: str = ""

    def stepper(self, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None) -> Stepper:
        """A fresh scheduler stepping through ``sigmas`` (descending, SIGMAS convention)."""
        return Stepper(self, scheduler_config, sigmas, seed)


_MULTISTEP = {"final_sigmas_type": "zero", "lower_order_final": True, "thresholding": False}

SAMPLERS: dict[str, SamplerSpec] = {
    spec.name: spec
    for spec in (
        SamplerSpec("euler", "EulerDiscreteScheduler"),
        SamplerSpec("euler_ancestral", "EulerAncestralDiscreteScheduler", hook=False),
        SamplerSpec("heun", "HeunDiscreteScheduler", stages=2),
        SamplerSpec("dpm_2", "KDPM2DiscreteScheduler", stages=2),
        SamplerSpec("dpm_2_ancestral", "KDPM2AncestralDiscreteScheduler", stages=2),
        # diffusers' LMSDiscreteScheduler integrates its coefficients with scipy, which Weft
        # does not depend on; this one integrates the same Lagrange polynomials exactly.
        SamplerSpec("lms", "own", hook=False, note="linear multistep (order 4) in sigma space"),
        SamplerSpec("dpmpp_2s_ancestral", "own", stages=2, hook=False,
                    note="DPM-Solver++(2S) ancestral: diffusers has no single-step ancestral DPM-Solver++"),
        SamplerSpec("dpmpp_sde", "own", stages=2, hook=False,
                    note="DPM-Solver++(2S) SDE; Gaussian noise from the seed instead of a Brownian tree"),
        SamplerSpec("dpmpp_2m", "DPMSolverMultistepScheduler",
                    {**_MULTISTEP, "algorithm_type": "dpmsolver++", "solver_order": 2, "solver_type": "midpoint"}, "vp"),
        SamplerSpec("dpmpp_2m_sde", "DPMSolverMultistepScheduler",
                    {**_MULTISTEP, "algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "midpoint"},
                    "vp"),
        SamplerSpec("dpmpp_3m_sde", "DPMSolverMultistepScheduler",
                    {**_MULTISTEP, "algorithm_type": "sde-dpmsolver++", "solver_order": 3}, "vp"),
        # Deterministic DDIM is the Euler method of the probability-flow ODE in sigma space;
        # ComfyUI runs "ddim" as Euler for the same reason, and so it accepts any schedule.
        SamplerSpec("ddim", "EulerDiscreteScheduler", note="DDIM (eta=0) as its equivalent Euler step"),
        # bh1's update multiplies by log-SNR differences that are infinite at sigma 0, so it
        # stops at the training sigma_min and the loop finishes with the clean estimate.
        SamplerSpec("uni_pc", "UniPCMultistepScheduler",
                    {"solver_type": "bh1", "predict_x0": True, "final_sigmas_type": "sigma_min",
                     "lower_order_final": True}, "vp"),
        SamplerSpec("uni_pc_bh2", "UniPCMultistepScheduler",
                    {"solver_type": "bh2", "predict_x0": True, "final_sigmas_type": "zero", "lower_order_final": True},
                    "vp"),
        SamplerSpec("deis", "DEISMultistepScheduler",
                    {"solver_order": 3, "algorithm_type": "deis", "lower_order_final": True}, "vp"),
        SamplerSpec("lcm", "own", hook=False, note="latent consistency: denoise, then re-noise to the next sigma"),
        SamplerSpec("ipndm", "own", hook=False, note="improved PNDM: Adams-Bashforth up to order 4, equal-step weights"),
        SamplerSpec("ddpm", "own", hook=False, note="DDPM ancestral sampling between arbitrary noise levels"),
    )
}

# ComfyUI's "_gpu" variants only move the Brownian-tree noise onto the GPU; Weft draws SDE
# noise from the seeded generator anyway, so they are the same samplers under another name
# (accepted so workflows that name them run unchanged).
for _base in ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"):
    SAMPLERS[f"{_base}_gpu"] = dataclasses.replace(SAMPLERS[_base], name=f"{_base}_gpu",
                                                  note=f"the same sampler as {_base}")

#: ComfyUI sampler names Weft does not offer, and why.
UNSUPPORTED_SAMPLERS: dict[str, str] = {
    "ipndm_v": "diffusers has no variable-step iPNDM",
    "heunpp2": "diffusers has no Heun++ scheduler",
    "euler_cfg_pp": "CFG++ changes the guidance inside the step; diffusers' schedulers cannot express it",
    "euler_ancestral_cfg_pp": "CFG++ changes the guidance inside the step; diffusers' schedulers cannot express it",
    "dpmpp_2m_cfg_pp": "CFG++ changes the guidance inside the step; diffusers' schedulers cannot express it",
    "dpmpp_2s_ancestral_cfg_pp": "CFG++ changes the guidance inside the step; diffusers' schedulers cannot express it",
    "res_multistep_cfg_pp": "CFG++ changes the guidance inside the step; diffusers' schedulers cannot express it",
    "res_multistep_ancestral_cfg_pp": "CFG++ changes the guidance inside the step; diffusers' schedulers cannot "
                                      "express it",
    "gradient_estimation_cfg_pp": "CFG++ changes the guidance inside the step; diffusers' schedulers cannot express it",
    "res_multistep": "diffusers has no RES multistep solver and Weft has none of its own yet",
    "res_multistep_ancestral": "diffusers has no RES multistep solver and Weft has none of its own yet",
    "gradient_estimation": "diffusers has no gradient-estimation sampler and Weft has none of its own yet",
    "er_sde": "diffusers has no ER-SDE solver and Weft has none of its own yet",
    "seeds_2": "diffusers has no SEEDS solver and Weft has none of its own yet",
    "seeds_3": "diffusers has no SEEDS solver and Weft has none of its own yet",
    "sa_solver": "diffusers' SASolverScheduler cannot take another schedule's sigmas; not offered yet",
    "sa_solver_pece": "diffusers' SASolverScheduler cannot take another schedule's sigmas; not offered yet",
}


@dataclass(frozen=True)
class LoopSamplerEntry:
    """A sampler name served by a SAMPLER that runs its own loop (``sample_loop``, see
    :mod:`.loops`): adaptive step sizes, momentum, anything a scheduler's ``step`` cannot say.

    ``factory`` is ``"module:function"``; the function takes the name and returns a fresh
    SAMPLER. It is imported on first use only, so the combo lists know every name while
    importing this module stays torch-free, and the research packages (``nodes/samplers/``)
    live outside the core without an import-order dependency on their registration.
    """

    name: str
    factory: str
    note: str = ""

    def build(self) -> Any:
        import importlib

        module, _, function = self.factory.partition(":")
        return getattr(importlib.import_module(module), function)(self.name)


_DPM_SOLVER = "nodes.samplers.dpm_solver:named_sampler"
_MOMENTUM = "nodes.samplers.momentum:named_sampler"

#: Sampler names whose SAMPLER brings its own loop, in the order the combo lists show them
#: (after :data:`SAMPLERS`): ComfyUI's names first, then Weft's own.
LOOP_SAMPLERS: dict[str, LoopSamplerEntry] = {
    entry.name: entry
    for entry in (
        LoopSamplerEntry("dpm_fast", _DPM_SOLVER,
                         "DPM-Solver-Fast (Lu et al. 2022, arXiv 2206.00927): orders 3/2/1 on uniform log-SNR "
                         "steps, as many model calls as steps; uses only the schedule's first and last nonzero sigma"),
        LoopSamplerEntry("dpm_adaptive", _DPM_SOLVER,
                         "DPM-Solver-23 with adaptive step size (Lu et al. 2022, arXiv 2206.00927); ignores "
                         "the steps and the intermediate sigmas, stops at the last nonzero sigma as ComfyUI does"),
        LoopSamplerEntry("dpmpp_2m_hb", _MOMENTUM,
                         "DPM-Solver++(2M) with Polyak heavy-ball momentum 0.8 (Wizadwongsa et al., ICLR 2024, "
                         "arXiv 2307.11118)"),
        LoopSamplerEntry("dpmpp_2m_ghvb", _MOMENTUM,
                         "DPM-Solver++(2M) with generalised heavy-ball momentum 0.8 (Wizadwongsa et al., "
                         "arXiv 2307.11118)"),
        LoopSamplerEntry("plms_hb", _MOMENTUM,
                         "PLMS (4th-order Adams-Bashforth, = ipndm) with heavy-ball momentum 0.8 "
                         "(Wizadwongsa et al., arXiv 2307.11118)"),
        LoopSamplerEntry("plms_ghvb", _MOMENTUM,
                         "generalised heavy ball of order 4 with momentum 0.8, 'GHVB 3.8' "
                         "(Wizadwongsa et al., arXiv 2307.11118)"),
    )
}

SAMPLER_NAMES: tuple[str, ...] = (*SAMPLERS, *LOOP_SAMPLERS)


def resolve_sampler(name: str) -> Any:
    """The SAMPLER a ``sampler_name`` stands for: a :class:`SamplerSpec`, or a fresh loop
    SAMPLER from :data:`LOOP_SAMPLERS`. Unknown or unsupported names raise ``ValueError``
    with the reason."""
    if not isinstance(name, str):
        raise ValueError(unsupported_message("sampler_name", str(name)))
    spec = SAMPLERS.get(name)
    if spec is not None:
        return spec
    entry = LOOP_SAMPLERS.get(name)
    if entry is None:
        raise ValueError(unsupported_message("sampler_name", str(name)))
    return entry.build()


def unsupported_message(kind: str, name: str) -> str:
    """A user-facing sentence for a sampler/scheduler name Weft refuses."""
    table = UNSUPPORTED_SAMPLERS if kind == "sampler_name" else UNSUPPORTED_SCHEDULERS
    choices = SAMPLER_NAMES if kind == "sampler_name" else SCHEDULER_NAMES
    reason = table.get(name, "it is not a name Weft knows")
    return f"{kind} {name!r} is not available: {reason}. Choose one of: {', '.join(choices)}"


# -- the model's training noise schedule -------------------------------------------------------


class ModelSigmas:
    """The training sigmas of a model (from its diffusers scheduler config) and conversions.

    ``sigmas[t]`` is the noise level of training timestep ``t`` (ascending with ``t``).
    """

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        import torch

        ac = alphas_cumprod.to(torch.float64)
        self.sigmas = ((1 - ac) / ac).sqrt().to(torch.float32)
        self.log_sigmas = self.sigmas.log()
        self.sigma_min = float(self.sigmas[0])
        self.sigma_max = float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional training timestep of each sigma (linear in log sigma between neighbours)."""
        import torch

        log_sigma = sigma.clamp(min=1e-10).log()
        dists = log_sigma - self.log_sigmas[:, None]
        low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high = low + 1
        lo, hi = self.log_sigmas[low], self.log_sigmas[high]
        w = ((lo - log_sigma) / (lo - hi)).clamp(0, 1)
        return ((1 - w) * low + w * high).to(torch.float32).reshape(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Sigma at fractional timestep ``t`` (log-linear interpolation)."""
        t = t.float().clamp(0, len(self.sigmas) - 1)
        low = t.floor().long()
        high = t.ceil().long()
        w = t - low
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()


_SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
                  "rescale_betas_zero_snr")


@lru_cache(maxsize=8)
def _model_sigmas(key: str) -> ModelSigmas:
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler.from_config(json.loads(key))
    return ModelSigmas(scheduler.alphas_cumprod)


def model_sigmas(scheduler_config: Mapping[str, Any]) -> ModelSigmas:
    """The training sigmas for a MODEL's ``scheduler_config``, cached per distinct schedule."""
    relevant = {k: scheduler_config[k] for k in _SCHEDULE_KEYS if scheduler_config.get(k) is not None}
    return _model_sigmas(json.dumps(relevant, sort_keys=True, default=list))


# -- schedules ---------------------------------------------------------------------------------


def _with_zero(values: Any) -> torch.Tensor:
    import torch

    sig = torch.as_tensor(values, dtype=torch.float32).flatten()
    return torch.cat([sig, sig.new_zeros(1)])


def _karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    import torch

    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _with_zero((hi + ramp * (lo - hi)) ** rho)


def _exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    import torch

    return _with_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64).exp())


def _normal(ms: ModelSigmas, n: int, sgm: bool) -> torch.Tensor:
    import torch

    t_max = float(ms.sigma_to_t(torch.tensor(ms.sigma_max)))
    t_min = float(ms.sigma_to_t(torch.tensor(ms.sigma_min)))
    ts = torch.linspace(t_max, t_min, n + 1)[:-1] if sgm else torch.linspace(t_max, t_min, n)
    return _with_zero(ms.t_to_sigma(ts))


def _simple(ms: ModelSigmas, n: int) -> torch.Tensor:
    stride = len(ms.sigmas) / n
    return _with_zero([float(ms.sigmas[-(1 + int(i * stride))]) for i in range(n)])


def _ddim_uniform(ms: ModelSigmas, n: int) -> torch.Tensor:
    stride = max(len(ms.sigmas) // n, 1)
    picked = [float(ms.sigmas[i]) for i in range(1, len(ms.sigmas), stride)]
    return _with_zero(picked[::-1])


def _beta_ppf(q: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Quantiles of the Beta(a, b) distribution, by inverting a fine numerical CDF.

    scipy is not a dependency; the density is integrated on a grid substituted through
    ``x = u^k`` near 0 and 1 so the integrable singularities of a, b < 1 stay accurate.
    """
    import torch

    u = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    x = 0.5 * (1 - torch.cos(math.pi * u))  # dense near both ends
    mid = 0.5 * (x[1:] + x[:-1])
    pdf = mid.pow(a - 1) * (1 - mid).pow(b - 1)
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(pdf * (x[1:] - x[:-1]), 0)])
    cdf = cdf / cdf[-1]
    idx = torch.searchsorted(cdf, q.to(torch.float64)).clamp(1, len(cdf) - 1)
    c0, c1 = cdf[idx - 1], cdf[idx]
    w = ((q - c0) / (c1 - c0).clamp(min=1e-300)).clamp(0, 1)
    return x[idx - 1] + w * (x[idx] - x[idx - 1])


def _beta(ms: ModelSigmas, n: int, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    import torch

    total = len(ms.sigmas) - 1
    q = 1 - torch.linspace(0, 1, n + 1, dtype=torch.float64)[:-1]
    idx = (_beta_ppf(q, alpha, beta) * total).round().long().tolist()
    picked: list[float] = []
    last = None
    for i in idx:
        if i != last:
            picked.append(float(ms.sigmas[i]))
        last = i
    return _with_zero(picked)


def _kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    import torch

    w = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
    return _with_zero(torch.tan(w * math.atan(sigma_min) + (1 - w) * math.atan(sigma_max)))


def compute_sigmas(scheduler_config: Mapping[str, Any], scheduler: str, steps: int) -> torch.Tensor:
    """ComfyUI's ``calculate_sigmas``: ``steps`` descending noise levels then 0 (float32 CPU).

    ``ddim_uniform`` and ``beta`` may return fewer steps when the training grid is coarser
    than ``steps``, as in ComfyUI.
    """
    import torch

    if steps <= 0:
        return torch.zeros(0)
    if scheduler not in SCHEDULER_NAMES:
        raise ValueError(unsupported_message("scheduler", scheduler))
    ms = model_sigmas(scheduler_config)
    if scheduler == "karras":
        return _karras(steps, ms.sigma_min, ms.sigma_max)
    if scheduler == "exponential":
        return _exponential(steps, ms.sigma_min, ms.sigma_max)
    if scheduler == "normal":
        return _normal(ms, steps, sgm=False)
    if scheduler == "sgm_uniform":
        return _normal(ms, steps, sgm=True)
    if scheduler == "simple":
        return _simple(ms, steps)
    if scheduler == "ddim_uniform":
        return _ddim_uniform(ms, steps)
    if scheduler == "beta":
        return _beta(ms, steps)
    return _kl_optimal(steps, ms.sigma_min, ms.sigma_max)


def denoise_sigmas(scheduler_config: Mapping[str, Any], scheduler: str, steps: int, denoise: float) -> torch.Tensor:
    """KSampler's schedule for ``denoise`` < 1: the last ``steps`` of a longer schedule."""
    import torch

    if denoise <= 0.0 or steps <= 0:
        return torch.zeros(0)
    if denoise >= 0.9999:
        return compute_sigmas(scheduler_config, scheduler, steps)
    total = int(steps / denoise)
    return compute_sigmas(scheduler_config, scheduler, total)[-(steps + 1):]


# -- steppers ----------------------------------------------------------------------------------


def _scheduler_class(name: str) -> type:
    import diffusers

    return getattr(diffusers, name)


class Stepper:
    """One sampling run's scheduler, driven call by call by :func:`sampling.sample`.

    ``timesteps[j]`` is what the UNet receives at model call ``j``; ``calls`` is how many
    model calls the run makes (fewer than ``len(timesteps)`` when the schedule stops above 0,
    as KSamplerAdvanced's ``return_with_leftover_noise`` asks).
    """

    def __init__(self, spec: SamplerSpec, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor,
                 seed: int | None) -> None:
        import torch

        self.spec = spec
        self.vp = spec.space == "vp"
        self.stages = spec.stages
        sigmas = sigmas.detach().to("cpu", torch.float32).flatten()
        ends_at_zero = bool(sigmas[-1] == 0)
        #: the full-step noise levels, always ending in 0 (what the scheduler steps through)
        self.grid = sigmas if ends_at_zero else torch.cat([sigmas, sigmas.new_zeros(1)])
        steps = len(sigmas) - 1
        self.generator = torch.Generator().manual_seed(int(seed) % (2**64)) if seed is not None else None
        self.prediction_type = scheduler_config.get("prediction_type", "epsilon")
        self.ms = model_sigmas(scheduler_config)
        if spec.scheduler == "own":
            self._init_own(spec, steps)
            return
        own = self.grid[:-1]  # the scheduler appends the final 0 itself
        scheduler = _template(spec, json.dumps(dict(scheduler_config), sort_keys=True, default=list))
        if spec.hook:
            scheduler._convert_to_karras = _fixed_sigmas(own)
            scheduler.set_timesteps(len(own))
        else:
            scheduler.set_timesteps(len(own))
            scheduler.sigmas = self.grid.clone()
            scheduler.timesteps = self.ms.sigma_to_t(own)
        scheduler.set_begin_index(0)
        self.scheduler = scheduler
        self.timesteps = scheduler.timesteps
        self.calls = len(scheduler.timesteps) if ends_at_zero else steps * self.stages
        # DEIS (and UniPC bh1) stop at a nonzero sigma instead of 0, where their updates are
        # undefined; the loop then finishes with the model's clean estimate of the last step.
        self.finish_denoised = ends_at_zero and float(scheduler.sigmas[-1]) != 0.0
        self._accepts_generator = _step_takes_generator(type(scheduler))

    # The loop calls these once per model call; keep them lean.
    def sigma_of_call(self, j: int) -> float:
        """The full-step noise level the sample is at when model call ``j`` starts (approximate
        between the two stages of 2-stage samplers)."""
        return float(self.grid[j // self.stages])

    def initial_sample(self, latent: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Noise the (scaled) latent to the first sigma, in the scheduler's space.

        Starting from the model's top noise level the noise is scaled by sqrt(1 + sigma^2)
        rather than sigma, as ComfyUI and diffusers' ``init_noise_sigma`` both do: at that
        level the latent is all noise, and this keeps the same seed giving the same image.
        """
        sigma = float(self.grid[0])
        at_top = sigma >= self.ms.sigma_max * (1 - 1e-5)
        x = latent + noise * (math.sqrt(1.0 + sigma * sigma) if at_top else sigma)
        return x / math.sqrt(1.0 + sigma * sigma) if self.vp else x

    def noised(self, latent: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
        """The clean latent noised to ``sigma`` in the scheduler's space (for inpainting)."""
        x = latent + noise * sigma
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

    def scale_input(self, x: torch.Tensor, j: int) -> torch.Tensor:
        if self.vp:
            return x
        if self.scheduler is None:
            sigma = self.call_sigmas[j]
            return x / math.sqrt(1.0 + sigma * sigma)
        return self.scheduler.scale_model_input(x, self.timesteps[j])

    def step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        if self.scheduler is None:
            return self._own_step(model_output, j, x)
        if self._accepts_generator:
            return self.scheduler.step(model_output, self.timesteps[j], x, generator=self.generator,
                                       return_dict=False)[0]
        return self.scheduler.step(model_output, self.timesteps[j], x, return_dict=False)[0]

    def denoised(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        """The model's estimate of the clean (scaled) latent at call ``j``, for previews."""
        return self._x0(model_output, x, self.sigma_of_call(j))

    def _x0(self, model_output: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
        s2 = 1.0 + sigma * sigma
        x_ve = x * math.sqrt(s2) if self.vp else x
        if self.prediction_type == "v_prediction":
            return x_ve / s2 - model_output * (sigma / math.sqrt(s2))
        return x_ve - model_output * sigma

    # -- samplers of our own (no diffusers scheduler expresses them) -------------------------
    def _init_own(self, spec: SamplerSpec, steps: int) -> None:
        import torch

        self.scheduler = None
        self._accepts_generator = False
        self.finish_denoised = False
        grid = [float(v) for v in self.grid]
        self._algorithm = algorithm = spec.name.removesuffix("_gpu")
        if algorithm in ("dpmpp_sde", "dpmpp_2s_ancestral"):
            # two model calls per step (the second at a geometric midpoint), one for a final
            # step to 0, which is a plain Euler step to the clean estimate
            self.stages = 2
            self.call_sigmas, self._roles = [], []
            for i in range(steps):
                sigma, sigma_next = grid[i], grid[i + 1]
                self.call_sigmas.append(sigma)
                self._roles.append((i, 0))
                if sigma_next > 0:
                    target = _ancestral(sigma, sigma_next)[0] if algorithm == "dpmpp_2s_ancestral" else sigma_next
                    self.call_sigmas.append(math.sqrt(sigma * target))
                    self._roles.append((i, 1))
            self._own_step = self._two_stage_step
        else:
            self.call_sigmas = grid[:steps]
            self._own_step = {"lcm": self._lcm_step, "lms": self._lms_step, "ipndm": self._ipndm_step,
                              "ddpm": self._ddpm_step}[algorithm]
            self._derivatives: list[Any] = []
            if algorithm == "lms":
                self._lms_coefficients = lms_coefficients(grid, LMS_ORDER)
        self.timesteps = self.ms.sigma_to_t(torch.tensor(self.call_sigmas, dtype=torch.float32))
        self.calls = len(self.call_sigmas)

    def _noise_like(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.randn(x.shape, generator=self.generator, dtype=torch.float32).to(x.device, x.dtype)

    def _two_stage_step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        """DPM-Solver++(2S): ancestral (dpmpp_2s_ancestral) or SDE (dpmpp_sde, r = 1/2).

        The SDE variant draws its noise from the seeded generator, not from a Brownian tree
        (torchsde), so its images differ from ComfyUI's for the same seed.
        """
        i, stage = self._roles[j]
        sigma, sigma_next = float(self.grid[i]), float(self.grid[i + 1])
        ancestral = self._algorithm == "dpmpp_2s_ancestral"
        if stage == 0:
            d = self._x0(model_output, x, sigma)
            if sigma_next == 0:
                return d
            self._start, self._d = x, d
            if ancestral:
                down = _ancestral(sigma, sigma_next)[0]
                ratio = math.sqrt(down / sigma)  # exp(-h/2) with h = log(sigma / down)
                return d + ratio * (x - d)
            down, up = _ancestral(sigma, self.call_sigmas[j + 1])
            return d + (down / sigma) * (x - d) + self._noise_like(x) * up
        x0, d = self._start, self._d
        d2 = self._x0(model_output, x, self.call_sigmas[j])
        down, up = _ancestral(sigma, sigma_next)
        out = d2 + (down / sigma) * (x0 - d2)
        return out + self._noise_like(out) * up if up > 0 else out

    def _lms_step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        sigma = float(self.grid[j])
        derivative = (x - self.denoised(model_output, j, x)) / sigma
        history = self._derivatives
        history.append(derivative)
        if len(history) > LMS_ORDER:
            history.pop(0)
        for k, weight in enumerate(self._lms_coefficients[j]):
            x = x + weight * history[-1 - k]
        return x

    def _ipndm_step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        sigma, sigma_next = float(self.grid[j]), float(self.grid[j + 1])
        d = (x - self._x0(model_output, x, sigma)) / sigma
        history = self._derivatives
        weights = _IPNDM_WEIGHTS[min(len(history), 3)]
        slope = d * weights[0]
        for k, weight in enumerate(weights[1:]):
            slope = slope + history[-1 - k] * weight
        history.append(d)
        if len(history) > 3:
            history.pop(0)
        return x + slope * (sigma_next - sigma)

    def _ddpm_step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
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

    def _lcm_step(self, model_output: torch.Tensor, j: int, x: torch.Tensor) -> torch.Tensor:
        import torch

        x0 = self.denoised(model_output, j, x)
        sigma_next = float(self.grid[j + 1])
        if sigma_next == 0:
            return x0
        noise = torch.randn(x0.shape, generator=self.generator, dtype=torch.float32).to(x0.device, x0.dtype)
        return x0 + noise * sigma_next


@lru_cache(maxsize=64)
def _prototype(scheduler_name: str, spec_config_json: str, hook: bool, config_json: str) -> Any:
    """A configured scheduler for ``spec`` and a model's training config, built once.

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
    if hook:
        config["use_karras_sigmas"] = True
    return cls.from_config(config)


def _template(spec: SamplerSpec, config_json: str) -> Any:
    import copy

    # A shallow copy is enough: set_timesteps replaces every per-run array and buffer, and the
    # training arrays (betas, alphas_cumprod) are only read.
    key = json.dumps(dict(spec.config), sort_keys=True)
    return copy.copy(_prototype(spec.scheduler, key, spec.hook, config_json))


@lru_cache(maxsize=32)
def _step_takes_generator(cls: type) -> bool:
    return "generator" in inspect.signature(cls.step).parameters


LMS_ORDER = 4
#: iPNDM's Adams-Bashforth weights for the current and up to three previous derivatives
_IPNDM_WEIGHTS = ((1.0,), (1.5, -0.5), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))


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


def _fixed_sigmas(sigmas: torch.Tensor) -> Any:
    values = sigmas.double().numpy().copy()

    def convert(in_sigmas: Any = None, num_inference_steps: int | None = None, **_: Any) -> Any:
        return values.copy()

    return convert
