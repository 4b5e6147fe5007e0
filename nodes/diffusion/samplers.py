"""ComfyUI's ``sampler_name`` and ``scheduler`` values: which exist, and what each one is.

Two halves, like ComfyUI's KSampler widgets:

* **Sigma schedules** (``scheduler``): :func:`.schedules.compute_sigmas` turns a model's
  training noise schedule and a step count into a descending tensor of sigmas ending in 0.
* **Samplers** (``sampler_name``): :class:`SamplerSpec` names a diffusers scheduler class
  and its settings, or one of Weft's own update rules (``scheduler="own"``, for the samplers
  no diffusers scheduler fits). :meth:`SamplerSpec.stepper` builds the run's stepper
  (:mod:`.steppers`, :mod:`.own_steppers`), so any schedule runs with any sampler.

Samplers that need a loop of their own (adaptive step size, momentum) are listed in
:data:`LOOP_SAMPLERS` by name and built on demand from ``nodes/samplers/``;
:func:`resolve_sampler` turns any name into its SAMPLER.

Names Weft cannot express are absent from the combo lists; :data:`UNSUPPORTED_SAMPLERS`
and :data:`UNSUPPORTED_SCHEDULERS` say why, and the sampling nodes put that reason in the
validation error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# Re-exported: the schedules and the LMS/iPNDM helpers lived here, and other packages import them from here.
from .own_steppers import IPNDM_WEIGHTS as _IPNDM_WEIGHTS  # noqa: F401
from .own_steppers import lms_coefficients as lms_coefficients
from .own_steppers import own_stepper
from .schedules import SCHEDULER_NAMES as SCHEDULER_NAMES
from .schedules import UNSUPPORTED_SCHEDULERS as UNSUPPORTED_SCHEDULERS
from .schedules import ModelSigmas as ModelSigmas
from .schedules import compute_sigmas as compute_sigmas
from .schedules import denoise_sigmas as denoise_sigmas
from .schedules import model_sigmas as model_sigmas
from .steppers import ATTRIBUTES, KARRAS_HOOK, DiffusersStepper, Stepper

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SamplerSpec:
    """A ComfyUI sampler name realised as a diffusers scheduler class and its settings
    (``scheduler="own"``: a stepper of Weft's own, :data:`.own_steppers.OWN_STEPPERS`).

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
    #: how a diffusers scheduler gets the run's sigmas (:mod:`.steppers`); unused by own samplers
    sigmas_via: str = KARRAS_HOOK
    note: str = ""

    def stepper(self, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None) -> Stepper:
        """A fresh stepper stepping through ``sigmas`` (descending, SIGMAS convention)."""
        if self.scheduler == "own":
            return own_stepper(self, scheduler_config, sigmas, seed)
        return DiffusersStepper(self, scheduler_config, sigmas, seed)


_MULTISTEP = {"final_sigmas_type": "zero", "lower_order_final": True, "thresholding": False}

SAMPLERS: dict[str, SamplerSpec] = {
    spec.name: spec
    for spec in (
        SamplerSpec("euler", "EulerDiscreteScheduler"),
        SamplerSpec("euler_ancestral", "EulerAncestralDiscreteScheduler", sigmas_via=ATTRIBUTES),
        SamplerSpec("heun", "HeunDiscreteScheduler", stages=2),
        SamplerSpec("dpm_2", "KDPM2DiscreteScheduler", stages=2),
        SamplerSpec("dpm_2_ancestral", "KDPM2AncestralDiscreteScheduler", stages=2),
        # diffusers' LMSDiscreteScheduler integrates its coefficients with scipy, which Weft
        # does not depend on; this one integrates the same Lagrange polynomials exactly.
        SamplerSpec("lms", "own", note="linear multistep (order 4) in sigma space"),
        SamplerSpec(
            "dpmpp_2s_ancestral",
            "own",
            stages=2,
            note="DPM-Solver++(2S) ancestral: diffusers has no single-step ancestral DPM-Solver++",
        ),
        SamplerSpec(
            "dpmpp_sde",
            "own",
            stages=2,
            note="DPM-Solver++(2S) SDE; Gaussian noise from the seed instead of a Brownian tree",
        ),
        SamplerSpec(
            "dpmpp_2m",
            "DPMSolverMultistepScheduler",
            {**_MULTISTEP, "algorithm_type": "dpmsolver++", "solver_order": 2, "solver_type": "midpoint"},
            "vp",
        ),
        SamplerSpec(
            "dpmpp_2m_sde",
            "DPMSolverMultistepScheduler",
            {**_MULTISTEP, "algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "midpoint"},
            "vp",
        ),
        SamplerSpec(
            "dpmpp_3m_sde",
            "DPMSolverMultistepScheduler",
            {**_MULTISTEP, "algorithm_type": "sde-dpmsolver++", "solver_order": 3},
            "vp",
        ),
        # Deterministic DDIM is the Euler method of the probability-flow ODE in sigma space;
        # ComfyUI runs "ddim" as Euler for the same reason, and so it accepts any schedule.
        SamplerSpec("ddim", "EulerDiscreteScheduler", note="DDIM (eta=0) as its equivalent Euler step"),
        # bh1's update multiplies by log-SNR differences that are infinite at sigma 0, so it
        # stops at the training sigma_min and the loop finishes with the clean estimate.
        SamplerSpec(
            "uni_pc",
            "UniPCMultistepScheduler",
            {"solver_type": "bh1", "predict_x0": True, "final_sigmas_type": "sigma_min", "lower_order_final": True},
            "vp",
        ),
        SamplerSpec(
            "uni_pc_bh2",
            "UniPCMultistepScheduler",
            {"solver_type": "bh2", "predict_x0": True, "final_sigmas_type": "zero", "lower_order_final": True},
            "vp",
        ),
        SamplerSpec(
            "deis",
            "DEISMultistepScheduler",
            {"solver_order": 3, "algorithm_type": "deis", "lower_order_final": True},
            "vp",
        ),
        SamplerSpec("lcm", "own", note="latent consistency: denoise, then re-noise to the next sigma"),
        SamplerSpec("ipndm", "own", note="improved PNDM: Adams-Bashforth up to order 4, equal-step weights"),
        SamplerSpec("ddpm", "own", note="DDPM ancestral sampling between arbitrary noise levels"),
    )
}

# ComfyUI's "_gpu" variants only move the Brownian-tree noise onto the GPU; Weft draws SDE
# noise from the seeded generator anyway, so they are the same samplers under another name
# (accepted so workflows that name them run unchanged).
for _base in ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"):
    SAMPLERS[f"{_base}_gpu"] = dataclasses.replace(
        SAMPLERS[_base], name=f"{_base}_gpu", note=f"the same sampler as {_base}"
    )

#: samplers whose KSampler schedule drops the last nonzero sigma (ComfyUI's KSampler rule,
#: :func:`.schedules.denoise_sigmas`); SamplerCustom's schedules are used as given
DISCARD_PENULTIMATE_SIGMA_SAMPLERS = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})

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
        LoopSamplerEntry(
            "dpm_fast",
            _DPM_SOLVER,
            "DPM-Solver-Fast (Lu et al. 2022, arXiv 2206.00927): orders 3/2/1 on uniform log-SNR "
            "steps, as many model calls as steps; uses only the schedule's first and last nonzero sigma",
        ),
        LoopSamplerEntry(
            "dpm_adaptive",
            _DPM_SOLVER,
            "DPM-Solver-23 with adaptive step size (Lu et al. 2022, arXiv 2206.00927); ignores "
            "the steps and the intermediate sigmas, stops at the last nonzero sigma as ComfyUI does",
        ),
        LoopSamplerEntry(
            "dpmpp_2m_hb",
            _MOMENTUM,
            "DPM-Solver++(2M) with Polyak heavy-ball momentum 0.8 (Wizadwongsa et al., ICLR 2024, arXiv 2307.11118)",
        ),
        LoopSamplerEntry(
            "dpmpp_2m_ghvb",
            _MOMENTUM,
            "DPM-Solver++(2M) with generalised heavy-ball momentum 0.8 (Wizadwongsa et al., arXiv 2307.11118)",
        ),
        LoopSamplerEntry(
            "plms_hb",
            _MOMENTUM,
            "PLMS (4th-order Adams-Bashforth, = ipndm) with heavy-ball momentum 0.8 "
            "(Wizadwongsa et al., arXiv 2307.11118)",
        ),
        LoopSamplerEntry(
            "plms_ghvb",
            _MOMENTUM,
            "generalised heavy ball of order 4 with momentum 0.8, 'GHVB 3.8' (Wizadwongsa et al., arXiv 2307.11118)",
        ),
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
