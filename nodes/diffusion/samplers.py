"""ComfyUI's ``sampler_name`` and ``scheduler`` values: which exist, and what each one is.

Two halves, like ComfyUI's KSampler widgets:

* **Sigma schedules** (``scheduler``): :func:`.schedules.compute_sigmas` turns a model's
  training noise schedule and a step count into a descending tensor of sigmas ending in 0.
* **Samplers** (``sampler_name``): :class:`SamplerSpec` names a diffusers scheduler class
  and its settings, or one of Weft's own update rules (``scheduler="own"``, for the samplers
  no diffusers scheduler fits). :meth:`SamplerSpec.stepper` builds the run's stepper
  (:mod:`.steppers`, :mod:`.own_steppers`), so any schedule runs with any sampler.

Samplers that need a loop of their own (adaptive step size, momentum, SDE solvers with
Brownian-tree noise, predictor-corrector solvers) are listed in
:data:`LOOP_SAMPLERS` by name and built on demand from ``nodes/samplers/``;
:func:`resolve_sampler` turns any name into its SAMPLER.

Names Weft cannot express are absent from the combo lists; :data:`UNSUPPORTED_SAMPLERS`
and :data:`UNSUPPORTED_SCHEDULERS` say why, and the sampling nodes put that reason in the
validation error.
"""

from __future__ import annotations

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
    #: inpainting noises the kept area with fresh noise from seed + 1, not the initial noise
    #: (ComfyUI's ddim; :func:`.inpainting.keep_noise`)
    fresh_inpaint_noise: bool = False

    def stepper(self, scheduler_config: Mapping[str, Any], sigmas: torch.Tensor, seed: int | None) -> Stepper:
        """A fresh stepper stepping through ``sigmas`` (descending, SIGMAS convention)."""
        if self.scheduler == "own":
            return own_stepper(self, scheduler_config, sigmas, seed)
        return DiffusersStepper(self, scheduler_config, sigmas, seed)


_DPM2 = "DPM2: Karras et al.'s Algorithm 2 with DPM-Solver-2's log-midpoint (arXiv 2206.00364)"

SAMPLERS: dict[str, SamplerSpec] = {
    spec.name: spec
    for spec in (
        SamplerSpec("euler", "EulerDiscreteScheduler"),
        SamplerSpec("euler_ancestral", "EulerAncestralDiscreteScheduler", sigmas_via=ATTRIBUTES),
        SamplerSpec("heun", "HeunDiscreteScheduler", stages=2),
        # ComfyUI's DPM2 and DPM-Solver++(2M) at the schedule's exact sigmas (.dpm_steppers);
        # diffusers' KDPM2 and DPM-Solver schedulers round timesteps and end otherwise
        SamplerSpec("dpm_2", "own", stages=2, note=_DPM2),
        SamplerSpec("dpm_2_ancestral", "own", stages=2, note=f"{_DPM2}, ancestral (eta 1)"),
        # diffusers' LMSDiscreteScheduler integrates its coefficients with scipy, which Weft
        # does not depend on; this one integrates the same Lagrange polynomials exactly.
        SamplerSpec("lms", "own", note="linear multistep (order 4) in sigma space"),
        SamplerSpec(
            "dpmpp_2s_ancestral",
            "own",
            stages=2,
            note="DPM-Solver++(2S) ancestral: diffusers has no single-step ancestral DPM-Solver++",
        ),
        SamplerSpec("dpmpp_2m", "own", note="DPM-Solver++(2M) in log sigma (Lu et al. 2022, arXiv 2211.01095)"),
        # Deterministic DDIM is the Euler method of the probability-flow ODE in sigma space;
        # ComfyUI runs "ddim" as Euler for the same reason, and so it accepts any schedule.
        # Inpainting, ComfyUI re-noises its kept area with fresh noise (seed + 1).
        SamplerSpec(
            "ddim",
            "EulerDiscreteScheduler",
            note="DDIM (eta=0) as its equivalent Euler step",
            fresh_inpaint_noise=True,
        ),
        # ComfyUI's UniPC (order 3, ends at sigma 0.001), not diffusers' (order 2, other ends)
        SamplerSpec("uni_pc", "own", note="UniPC bh1, order 3, as ComfyUI (Zhao et al. 2023, arXiv 2302.04867)"),
        SamplerSpec("uni_pc_bh2", "own", note="UniPC bh2, order 3, as ComfyUI (Zhao et al. 2023, arXiv 2302.04867)"),
        SamplerSpec("deis", "own", note="DEIS, time-based Adams-Bashforth of order 3, as ComfyUI (arXiv 2204.13902)"),
        SamplerSpec("lcm", "own", note="latent consistency: denoise, then re-noise to the next sigma"),
        SamplerSpec("ipndm", "own", note="improved PNDM: Adams-Bashforth up to order 4, equal-step weights"),
        SamplerSpec("ddpm", "own", note="DDPM ancestral sampling between arbitrary noise levels"),
    )
}

#: samplers whose KSampler schedule drops the last nonzero sigma (ComfyUI's KSampler rule,
#: :func:`.schedules.denoise_sigmas`); SamplerCustom's schedules are used as given
DISCARD_PENULTIMATE_SIGMA_SAMPLERS = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})

#: ComfyUI sampler names Weft does not offer, and why (none at present).
UNSUPPORTED_SAMPLERS: dict[str, str] = {}


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
_DPMPP_SDE = "nodes.samplers.dpmpp_sde:named_sampler"
#: ComfyUI's DPM-Solver++ SDE samplers (nodes/samplers/dpmpp_sde.py), in KSampler's order; the
#: "_gpu" twins build their Brownian tree on the sample's device instead of the CPU
_DPMPP_SDE_NAMES = (
    "dpmpp_sde",
    "dpmpp_sde_gpu",
    "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun",
    "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde",
    "dpmpp_3m_sde_gpu",
)
_SDE_NOISE = "noise from a Brownian tree of the seed, as ComfyUI's (Lu et al. 2022, arXiv 2211.01095)"
_DPMPP_SDE_NOTES = {
    "dpmpp_sde": f"DPM-Solver++(2S) SDE, two model calls a step; {_SDE_NOISE}",
    "dpmpp_2m_sde": f"DPM-Solver++(2M) SDE, midpoint correction; {_SDE_NOISE}",
    "dpmpp_2m_sde_heun": f"DPM-Solver++(2M) SDE, Heun correction; {_SDE_NOISE}",
    "dpmpp_3m_sde": f"DPM-Solver++(3M) SDE; {_SDE_NOISE}",
}
_DPMPP_SDE_NOTES.update(
    {f"{name}_gpu": f"{note}; the tree on the sample's device" for name, note in _DPMPP_SDE_NOTES.items()}
)

_SDE_EXTRA = "nodes.samplers.sde_extras:named_sampler"
_SEEDS = "SEEDS (Gonzalez et al., NeurIPS 2023, arXiv 2305.14267)"
#: ComfyUI's ER-SDE and SEEDS samplers (nodes/samplers/sde_extras.py), noise from the seeded generator
_SDE_EXTRAS = (
    LoopSamplerEntry(
        "exp_heun_2_x0_sde",
        _SDE_EXTRA,
        f"stochastic exponential Heun in log sigma with the data prediction: {_SEEDS}-2 with eta 1, r 1, phi_2",
    ),
    LoopSamplerEntry(
        "er_sde",
        _SDE_EXTRA,
        "ER-SDE-Solver-3, extended reverse-time SDE (Cui et al. 2024, arXiv 2309.06169), ComfyUI's noise scale",
    ),
    LoopSamplerEntry("seeds_2", _SDE_EXTRA, f"{_SEEDS}-2: two model calls a step, eta 1, r 1/2"),
    LoopSamplerEntry("seeds_3", _SDE_EXTRA, f"{_SEEDS}-3: three model calls a step, eta 1, r 1/3 and 2/3"),
)

_SA_SOLVER = "nodes.samplers.sa_solver:named_sampler"
_SA = "SA-Solver, stochastic Adams predictor 3 / corrector 4 (Xue et al., NeurIPS 2023, arXiv 2309.05019)"
_SA_NOISE = "noise (eta 1) from the seeded generator between 20 % and 80 % of the schedule"
#: ComfyUI's SA-Solver samplers (nodes/samplers/sa_solver.py)
_SA_SOLVERS = (
    LoopSamplerEntry("sa_solver", _SA_SOLVER, f"{_SA}; {_SA_NOISE}"),
    LoopSamplerEntry("sa_solver_pece", _SA_SOLVER, f"{_SA}, PECE: two model calls a step; {_SA_NOISE}"),
)

_CFG_PP = "CFG++ (Chung et al. 2024, arXiv 2406.08070): re-noises with the unconditional estimate; use a low cfg"
_ANCESTRAL = "nodes.samplers.ancestral:named_sampler"
_EXPONENTIAL = "nodes.samplers.exponential:named_sampler"
_MULTISTEP = "nodes.samplers.multistep:named_sampler"
_RES = "RES second-order exponential multistep (Zhang, Song, Chen 2023, arXiv 2308.02157)"
_GE = "gradient estimation, gamma 2 (Permenter & Yuan, ICML 2024, arXiv 2306.04848)"
#: ComfyUI's deterministic and ancestral samplers that need a loop of their own (nodes/samplers/)
_COMFYUI_LOOP_SAMPLERS = (
    LoopSamplerEntry("euler_cfg_pp", _ANCESTRAL, f"Euler with {_CFG_PP}"),
    LoopSamplerEntry("euler_ancestral_cfg_pp", _ANCESTRAL, f"Euler ancestral (eta 1) with {_CFG_PP}"),
    LoopSamplerEntry(
        "heunpp2",
        "nodes.samplers.heunpp:named_sampler",
        "Heun++: three-stage Heun looking two steps ahead (ComfyUI's, from Carzit's sd-webui-samplers-scheduler)",
    ),
    LoopSamplerEntry(
        "exp_heun_2_x0",
        _EXPONENTIAL,
        "exponential Heun in log sigma with the data prediction: SEEDS-2 with eta 0, r 1 "
        "(Gonzalez et al., NeurIPS 2023, arXiv 2305.14267)",
    ),
    LoopSamplerEntry(
        "dpmpp_2s_ancestral_cfg_pp",
        _ANCESTRAL,
        f"DPM-Solver++(2S) ancestral (Lu et al., arXiv 2211.01095) with {_CFG_PP}",
    ),
    LoopSamplerEntry("dpmpp_2m_cfg_pp", _EXPONENTIAL, f"DPM-Solver++(2M) (Lu et al., arXiv 2211.01095) with {_CFG_PP}"),
    LoopSamplerEntry(
        "ipndm_v",
        _MULTISTEP,
        "iPNDM with variable step sizes, orders up to 4 (Zhou et al., CVPR 2024, arXiv 2312.00094)",
    ),
    LoopSamplerEntry("res_multistep", _EXPONENTIAL, _RES),
    LoopSamplerEntry("res_multistep_cfg_pp", _EXPONENTIAL, f"{_RES} with {_CFG_PP}"),
    LoopSamplerEntry("res_multistep_ancestral", _EXPONENTIAL, f"{_RES}, ancestral (eta 1)"),
    LoopSamplerEntry("res_multistep_ancestral_cfg_pp", _EXPONENTIAL, f"{_RES}, ancestral (eta 1), with {_CFG_PP}"),
    LoopSamplerEntry("gradient_estimation", _MULTISTEP, _GE),
    LoopSamplerEntry("gradient_estimation_cfg_pp", _MULTISTEP, f"{_GE} with {_CFG_PP}"),
)

#: Sampler names whose SAMPLER brings its own loop (ComfyUI's names first, then Weft's own; the
#: combo lists show ComfyUI's names in ComfyUI's order, see :data:`SAMPLER_NAMES`).
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
        *_COMFYUI_LOOP_SAMPLERS,
        *(LoopSamplerEntry(name, _DPMPP_SDE, _DPMPP_SDE_NOTES[name]) for name in _DPMPP_SDE_NAMES),
        *_SDE_EXTRAS,
        *_SA_SOLVERS,
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

#: ComfyUI 0.8.0's sampler combo (comfy/samplers.py ``SAMPLER_NAMES``: ``KSAMPLER_NAMES`` + ddim,
#: uni_pc, uni_pc_bh2), the order Weft's combos follow so lists and defaults look the same
COMFYUI_SAMPLER_ORDER: tuple[str, ...] = (
    *("euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2"),
    *("exp_heun_2_x0", "exp_heun_2_x0_sde", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive"),
    *("dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m"),
    *("dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu"),
    *("dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep"),
    *("res_multistep_cfg_pp", "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp"),
    *("gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver"),
    *("sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2"),
)


def _combo_order(names: tuple[str, ...]) -> tuple[str, ...]:
    """ComfyUI's names in ComfyUI's order, then Weft's own in the order they were registered."""
    known = set(names)
    return (*(n for n in COMFYUI_SAMPLER_ORDER if n in known), *(n for n in names if n not in COMFYUI_SAMPLER_ORDER))


SAMPLER_NAMES: tuple[str, ...] = _combo_order((*SAMPLERS, *LOOP_SAMPLERS))


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
