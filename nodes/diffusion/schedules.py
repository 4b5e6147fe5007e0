"""Sigma schedules: ComfyUI's ``scheduler`` values, computed from a model's training noise.

:func:`compute_sigmas` turns a model's training noise schedule and a step count into a
descending tensor of sigmas ending in 0 (ComfyUI's SIGMAS convention: k-diffusion's
"variance exploding" noise levels), with ComfyUI's math for each name, so a workflow's
schedule is the same here and there. Any sampler then steps through it (:mod:`.steppers`).

torch is imported inside the functions; importing this module stays cheap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: ComfyUI scheduler names Weft computes, in ComfyUI's order.
SCHEDULER_NAMES: tuple[str, ...] = (
    "simple",
    "sgm_uniform",
    "karras",
    "exponential",
    "ddim_uniform",
    "beta",
    "normal",
    "linear_quadratic",
    "kl_optimal",
)
UNSUPPORTED_SCHEDULERS: dict[str, str] = {
    "align_your_steps": (
        "ComfyUI 0.8.0's KSampler does not offer it either; use the AlignYourStepsScheduler node "
        "with SamplerCustomAdvanced"
    ),
}


# -- the model's training noise schedule -------------------------------------------------------


class ModelSigmas:
    """The training sigmas of a model (from its diffusers scheduler config) and conversions.

    ``sigmas[t]`` is the noise level of training timestep ``t`` (ascending with ``t``); for the
    SD families the very float32 values ComfyUI's ``ModelSamplingDiscrete`` holds
    (:func:`model_sigmas`). Sampling loops call the model at :meth:`call_timestep`; schedules and
    windows convert with :meth:`sigma_to_t` / :meth:`t_to_sigma`, fractional as in ComfyUI.
    """

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        import torch

        ac = alphas_cumprod.to(torch.float64)
        sigmas = ((1 - ac) / ac) ** 0.5
        # float32 values of the float64 sigmas and of their float64 logs, as ComfyUI keeps them:
        # the same bits make a sigma on a half step go to the same whole timestep as there
        self.sigmas = sigmas.to(torch.float32)
        self.log_sigmas = sigmas.log().to(torch.float32)
        self.sigma_min = float(self.sigmas[0])
        self.sigma_max = float(self.sigmas[-1])

    def model_timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The whole training timestep the network is called at for noise level ``sigma``:
        ComfyUI's ``ModelSamplingDiscrete.timestep``, the training timestep whose log sigma is
        nearest (an equal distance goes to the lower timestep, as ``argmin`` takes the first).

        Calling the UNet at the fractional timestep of ``sigma`` instead put every sampler 1.6e-3
        to 9.2e-3 of the latent's scale from ComfyUI's result at worst (8 steps; ComfyUI's own code
        on the tiny test UNet), so the same workflow did not give ComfyUI's picture. An int64
        tensor shaped like ``sigma``.
        """
        dists = sigma.log().to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).reshape(sigma.shape)

    def call_timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The timestep a sampling loop hands the predictor for a model call at ``sigma``.

        It is :meth:`sigma_to_t`, so guidance hooks, ControlNet and conditioning windows read the
        call's exact noise level back from it (:meth:`t_to_sigma`), kept within the half step
        around :meth:`model_timestep`, so that :func:`whole_timestep` (what the UNet and the
        ControlNets receive) is exactly ComfyUI's whole timestep also where the fractional one
        sits on a half step (the ``normal`` and ``sgm_uniform`` schedules put a sigma exactly
        there, and float rounding alone would then decide which way it went).
        """
        import torch

        whole = self.model_timestep(sigma).to(torch.float32)
        t = self.sigma_to_t(sigma).to(torch.float32)
        above_lower_half = torch.nextafter(whole - 0.5, whole)
        return torch.minimum(torch.maximum(t, above_lower_half), whole + 0.5)

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


def whole_timestep(t: torch.Tensor) -> torch.Tensor:
    """The whole training timestep a network is called at, from a (fractional) timestep ``t``:
    the nearest, a half step going down. For ``t`` from :meth:`ModelSigmas.call_timestep` that is
    exactly :meth:`ModelSigmas.model_timestep` of the call's sigma (ComfyUI's rule), since ``t``
    is linear in log sigma between whole timesteps. Same dtype and device as ``t``."""
    import torch

    low = t.floor()
    return torch.where(t - low > 0.5, low + 1, low)


_SCHEDULE_KEYS = (
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "rescale_betas_zero_snr",
)


@lru_cache(maxsize=8)
def _model_sigmas(key: str) -> ModelSigmas:
    config = json.loads(key)
    alphas_cumprod = _float64_alphas_cumprod(config)
    if alphas_cumprod is None:
        from diffusers import EulerDiscreteScheduler

        alphas_cumprod = EulerDiscreteScheduler.from_config(config).alphas_cumprod
    return ModelSigmas(alphas_cumprod)


def _float64_alphas_cumprod(config: Mapping[str, Any]) -> torch.Tensor | None:
    """The training schedule in float64 from its betas, as ComfyUI's ``ModelSamplingDiscrete``
    computes the SD families' (diffusers computes it in float32: sigmas 1.3e-5 apart), rescaled to
    zero terminal SNR as ComfyUI does with ``zsnr`` (:func:`_zero_terminal_snr`). ``None`` for what
    ComfyUI computes otherwise or not at all here (other beta schedules, given betas): diffusers'
    table then. Missing keys take diffusers' defaults."""
    import torch

    kind = config.get("beta_schedule", "linear")
    if config.get("trained_betas") is not None:
        return None
    count = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.0001)), float(config.get("beta_end", 0.02))
    if kind == "scaled_linear":  # ComfyUI's "linear"
        betas = torch.linspace(start**0.5, end**0.5, count, dtype=torch.float64) ** 2
    elif kind == "linear":  # ComfyUI's "sqrt_linear"
        betas = torch.linspace(start, end, count, dtype=torch.float64)
    else:
        return None
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return _zero_terminal_snr(alphas_cumprod) if config.get("rescale_betas_zero_snr") else alphas_cumprod


#: the last alpha_cumprod of a zero-terminal-SNR schedule: ComfyUI's stand-in for 0 (an infinite
#: sigma), where diffusers puts 2**-24 (sigma_max about 4519 there, 4096 in diffusers)
_ZSNR_LAST_ALPHA_CUMPROD = 4.8973451890853435e-08


def _zero_terminal_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2023 ("Common Diffusion Noise Schedules and Sample Steps are Flawed", Algorithm
    1): sqrt(alpha_cumprod) shifted so the last is 0 and scaled so the first keeps its value,
    in float64 from the sigmas as ComfyUI's ``rescale_zero_terminal_snr_sigmas`` computes it, with
    its last value (:data:`_ZSNR_LAST_ALPHA_CUMPROD`), so a ``ModelSamplingDiscrete`` node with
    ``zsnr`` starts from ComfyUI's noise level."""
    sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    root = (1 / (sigmas * sigmas + 1)).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    rescaled = root**2
    rescaled[-1] = _ZSNR_LAST_ALPHA_CUMPROD
    return rescaled


def model_sigmas(scheduler_config: Mapping[str, Any]) -> ModelSigmas:
    """The training sigmas for a MODEL's ``scheduler_config``, cached per distinct schedule."""
    relevant = {k: scheduler_config[k] for k in _SCHEDULE_KEYS if scheduler_config.get(k) is not None}
    return _model_sigmas(json.dumps(relevant, sort_keys=True, default=list))


# -- schedules ---------------------------------------------------------------------------------


def _with_zero(values: Any) -> torch.Tensor:
    import torch

    sig = torch.as_tensor(values, dtype=torch.float32).flatten()
    return torch.cat([sig, sig.new_zeros(1)])


def karras_schedule(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al.'s schedule (also the KarrasScheduler node's, with its own range and rho).

    In float32, as k-diffusion's ``get_sigmas_karras`` computes it in ComfyUI: float64 sigmas
    are about 1e-7 apart from those, which the Brownian-tree SDE samplers (``dpmpp_sde``,
    ``dpmpp_2m_sde``...) turn into noise 1e-4 of the latent's scale apart (a Brownian path
    moves by the square root of the time step).
    """
    import torch

    ramp = torch.linspace(0, 1, n, dtype=torch.float32)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _with_zero((hi + ramp * (lo - hi)) ** rho)


def _exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Evenly spaced in log sigma, in float32 as ComfyUI's (see :func:`karras_schedule`)."""
    import torch

    return _with_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float32).exp())


def _normal(ms: ModelSigmas, n: int, sgm: bool) -> torch.Tensor:
    """Evenly spaced timesteps between the whole timesteps of the largest and the smallest
    training sigma (ComfyUI's ``normal_scheduler``), each at its log-interpolated sigma."""
    import torch

    t_max = float(ms.model_timestep(torch.tensor(ms.sigma_max)))
    t_min = float(ms.model_timestep(torch.tensor(ms.sigma_min)))
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

    w = torch.arange(n, dtype=torch.float32) / max(n - 1, 1)  # float32, as ComfyUI's
    return _with_zero(torch.tan(w * math.atan(sigma_min) + (1 - w) * math.atan(sigma_max)))


def _linear_quadratic(n: int, sigma_max: float, threshold: float = 0.025) -> torch.Tensor:
    """ComfyUI's ``linear_quadratic_schedule`` (from Genmo's Mochi): the first half of the steps
    lower the noise linearly by ``threshold`` in all, the rest quadratically to 0; as fractions of
    ``sigma_max`` (ComfyUI offers it to every model, the SD families included)."""
    import torch

    if n == 1:
        fractions = [1.0, 0.0]
    else:
        linear = n // 2
        quadratic = n - linear
        step_diff = linear - threshold * n
        q_coef = step_diff / (linear * quadratic**2)
        l_coef = threshold / linear - 2 * step_diff / (quadratic**2)
        const = q_coef * linear**2
        drops = [i * threshold / linear for i in range(linear)]
        drops += [q_coef * i**2 + l_coef * i + const for i in range(linear, n)]
        fractions = [1.0 - d for d in [*drops, 1.0]]
    # float32 throughout, as ComfyUI multiplies its float32 fractions by its float32 sigma_max
    return torch.tensor(fractions, dtype=torch.float32) * torch.tensor(sigma_max, dtype=torch.float32)


def beta_schedule(scheduler_config: Mapping[str, Any], steps: int, alpha: float, beta: float) -> torch.Tensor:
    """The ``beta`` schedule with its own shape parameters (the BetaSamplingScheduler node)."""
    return _beta(model_sigmas(scheduler_config), steps, alpha, beta)


#: ``scheduler`` name -> ``schedule(model_sigmas, steps)``, for every name in SCHEDULER_NAMES
_SCHEDULES: dict[str, Callable[[ModelSigmas, int], torch.Tensor]] = {
    "simple": _simple,
    "sgm_uniform": lambda ms, n: _normal(ms, n, sgm=True),
    "karras": lambda ms, n: karras_schedule(n, ms.sigma_min, ms.sigma_max),
    "exponential": lambda ms, n: _exponential(n, ms.sigma_min, ms.sigma_max),
    "ddim_uniform": _ddim_uniform,
    "beta": _beta,
    "normal": lambda ms, n: _normal(ms, n, sgm=False),
    "linear_quadratic": lambda ms, n: _linear_quadratic(n, ms.sigma_max),
    "kl_optimal": lambda ms, n: _kl_optimal(n, ms.sigma_min, ms.sigma_max),
}


def compute_sigmas(scheduler_config: Mapping[str, Any], scheduler: str, steps: int) -> torch.Tensor:
    """ComfyUI's ``calculate_sigmas``: ``steps`` descending noise levels then 0 (float32 CPU).

    ``ddim_uniform`` and ``beta`` may return fewer steps when the training grid is coarser
    than ``steps``, as in ComfyUI.
    """
    import torch

    if steps <= 0:
        return torch.zeros(0)
    schedule = _SCHEDULES.get(scheduler)
    if schedule is None:
        from .samplers import unsupported_message

        raise ValueError(unsupported_message("scheduler", scheduler))
    return schedule(model_sigmas(scheduler_config), steps)


def denoise_sigmas(
    scheduler_config: Mapping[str, Any],
    scheduler: str,
    steps: int,
    denoise: float,
    *,
    discard_penultimate: bool = False,
) -> torch.Tensor:
    """KSampler's schedule for ``denoise`` < 1: the last ``steps`` of a longer schedule.

    ``discard_penultimate``: KSampler's rule for the samplers that name it (ComfyUI's
    ``KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS``: dpm_2, dpm_2_ancestral, uni_pc,
    uni_pc_bh2): the schedule is computed for one step more and its last nonzero sigma
    dropped, so the run ends with one long step to 0. BasicScheduler does not do this.
    """
    import torch

    if denoise <= 0.0 or steps <= 0:
        return torch.zeros(0)

    def schedule(count: int) -> torch.Tensor:
        if not discard_penultimate:
            return compute_sigmas(scheduler_config, scheduler, count)
        longer = compute_sigmas(scheduler_config, scheduler, count + 1)
        return torch.cat([longer[:-2], longer[-1:]])

    if denoise >= 0.9999:
        return schedule(steps)
    return schedule(int(steps / denoise))[-(steps + 1) :]
