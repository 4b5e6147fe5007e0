"""SIGMAS from formulas: ComfyUI's scheduler nodes beside BasicScheduler and KarrasScheduler.

Each node gives a descending schedule of noise levels for SamplerCustom(Advanced), with
ComfyUI 0.8.0's inputs, defaults and math (comfy_extras/nodes_custom_sampler.py,
nodes_align_your_steps.py, comfy/k_diffusion/sampling.py), so a workflow's sigmas are the same
here and there. The formulas are evaluated in float64 and returned as float32 CPU tensors.

* ExponentialScheduler: evenly spaced in log sigma; PolyexponentialScheduler: log sigma
  ``ramp**rho`` of the way from sigma_min to sigma_max (rho 1 is exponential).
* VPScheduler: the continuous variance-preserving schedule of Song et al. (2021).
* LaplaceScheduler: log sigma Laplace-distributed around ``mu`` (Hang et al., "Improved Noise
  Schedule for Diffusion Training", 2024; ComfyUI credits "Tiankai et al."); as in
  ComfyUI it ends at its lowest sigma, not at 0, and is clamped to [sigma_min, sigma_max].
* SDTurboScheduler: SD-Turbo's timesteps 999, 899, ... 99, as the model's sigmas.
* BetaSamplingScheduler: the ``beta`` scheduler with its shape parameters (Lee et al., 2024).
* AlignYourStepsScheduler: the 10-step noise levels NVIDIA published for SD1.5, SDXL and SVD
  (Sabour et al., "Align Your Steps", 2024), interpolated log-linearly to other step counts.

torch is imported inside the functions; importing this module stays cheap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .api import Combo, Float, Input, Int, Node, Output

if TYPE_CHECKING:
    import torch

#: Align Your Steps: the published 10-step schedules (sigma_max ... sigma_min), from
#: https://research.nvidia.com/labs/toronto-ai/AlignYourSteps/howto.html as ComfyUI lists them
AYS_NOISE_LEVELS: dict[str, tuple[float, ...]] = {
    "SD1": (14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
            0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582),
    "SDXL": (14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141,
             0.5550693289, 0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582),
    "SVD": (700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002),
}  # fmt: skip


def _float32(values: Any, zero: bool = True) -> torch.Tensor:
    import torch

    sigmas = torch.as_tensor(values, dtype=torch.float64).flatten()
    if zero:
        sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    return sigmas.to(torch.float32)


def exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    import torch

    return _float32(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64).exp())


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    import torch

    ramp = torch.linspace(1, 0, n, dtype=torch.float64) ** rho
    lo, hi = math.log(sigma_min), math.log(sigma_max)
    return _float32(torch.exp(ramp * (hi - lo) + lo))


def vp(n: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> torch.Tensor:
    import torch

    t = torch.linspace(1, eps_s, n, dtype=torch.float64)
    return _float32(torch.sqrt(torch.special.expm1(beta_d * t**2 / 2 + beta_min * t)))


def laplace(n: int, sigma_min: float, sigma_max: float, mu: float = 0.0, beta: float = 0.5) -> torch.Tensor:
    """Without a final 0, as in ComfyUI (``get_sigmas_laplace`` does not append one)."""
    import torch

    x = torch.linspace(0, 1, n, dtype=torch.float64)
    lmb = mu - beta * torch.sign(0.5 - x) * torch.log(1 - 2 * (0.5 - x).abs() + 1e-5)
    return _float32(lmb.exp().clamp(min=sigma_min, max=sigma_max), zero=False)


def loglinear_interp(levels: tuple[float, ...] | list[float], count: int) -> list[float]:
    """``count`` levels, descending, linearly interpolated in log space over ``levels`` spread
    evenly on [0, 1] (NVIDIA's recipe for other step counts than the published ones)."""
    logs = [math.log(v) for v in reversed(levels)]
    last = len(logs) - 1
    out = []
    for i in range(count):
        pos = (i / (count - 1) if count > 1 else 0.0) * last
        low = min(int(pos), last - 1)
        w = pos - low
        out.append(math.exp(logs[low] + (logs[low + 1] - logs[low]) * w))
    return out[::-1]


def align_your_steps(model_type: str, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """ComfyUI's AlignYourStepsScheduler: the table (interpolated unless ``steps`` is 10), its
    last ``round(steps * denoise)`` steps, ending in 0."""
    import torch

    if denoise <= 0.0:
        return torch.zeros(0)
    total = steps if denoise >= 1.0 else round(steps * denoise)
    levels = list(AYS_NOISE_LEVELS[model_type])
    if steps + 1 != len(levels):
        levels = loglinear_interp(levels, steps + 1)
    levels = levels[-(total + 1) :]
    levels[-1] = 0.0
    return _float32(levels, zero=False)


def sd_turbo(scheduler_config: Any, steps: int, denoise: float) -> torch.Tensor:
    """SD-Turbo's schedule: of the timesteps 999, 899, ... 99, ``steps`` from ``10 - int(10 * denoise)``."""
    import torch

    from .diffusion.samplers import model_sigmas

    start = 10 - int(10 * denoise)
    timesteps = [999 - 100 * i for i in range(10)][start : start + steps]
    sigmas = model_sigmas(scheduler_config).t_to_sigma(torch.tensor(timesteps, dtype=torch.float32))
    return torch.cat([sigmas.to(torch.float32), torch.zeros(1)])


def _steps(default: int = 20) -> Any:
    return Int("steps", default, min=1, max=10000)


def _sigma(name: str, default: float) -> Any:
    return Float(name, default, min=0.0, max=5000.0, step=0.01, round=False)


def _positive_range(inputs: dict[str, Any], *names: str) -> bool | str:
    """Refuse a sigma of 0 where the formula takes its logarithm (ComfyUI fails there at run time)."""
    for name in names:
        value = inputs.get(name)
        if isinstance(value, (int, float)) and value <= 0:
            return f"{name} must be above 0 (the schedule is spaced in log sigma)"
    return True


class _FormulaScheduler(Node):
    category = "sampling/custom_sampling/schedulers"
    outputs = (Output("SIGMAS"),)


class ExponentialScheduler(_FormulaScheduler):
    description = "Noise levels evenly spaced in log sigma from sigma_max to sigma_min, then 0."
    inputs = (_steps(), _sigma("sigma_max", 14.614642), _sigma("sigma_min", 0.0291675))

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        return _positive_range(inputs, "sigma_max", "sigma_min")

    def run(self, steps: int, sigma_max: float, sigma_min: float) -> tuple:
        return (exponential(steps, sigma_min, sigma_max),)


class PolyexponentialScheduler(_FormulaScheduler):
    description = (
        "Noise levels from sigma_max to sigma_min, then 0, with log sigma following ramp^rho: "
        "rho 1 is exponential, larger values spend more steps at high noise."
    )
    inputs = (
        _steps(),
        _sigma("sigma_max", 14.614642),
        _sigma("sigma_min", 0.0291675),
        Float("rho", 1.0, min=0.0, max=100.0, step=0.01, round=False),
    )

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        return _positive_range(inputs, "sigma_max", "sigma_min")

    def run(self, steps: int, sigma_max: float, sigma_min: float, rho: float) -> tuple:
        return (polyexponential(steps, sigma_min, sigma_max, rho),)


class LaplaceScheduler(_FormulaScheduler):
    description = (
        "Noise levels whose log sigma is Laplace-distributed around mu with scale beta (Hang et al., "
        "2024), clamped to [sigma_min, sigma_max]; like ComfyUI's, the list ends at its lowest sigma, not 0."
    )
    inputs = (
        _steps(),
        _sigma("sigma_max", 14.614642),
        _sigma("sigma_min", 0.0291675),
        Float("mu", 0.0, min=-10.0, max=10.0, step=0.1, round=False),
        Float("beta", 0.5, min=0.0, max=10.0, step=0.1, round=False),
    )

    def run(self, steps: int, sigma_max: float, sigma_min: float, mu: float, beta: float) -> tuple:
        return (laplace(steps, sigma_min, sigma_max, mu, beta),)


class VPScheduler(_FormulaScheduler):
    description = "The continuous variance-preserving schedule (Song et al., 2021) from t = 1 to eps_s, then 0."
    inputs = (
        _steps(),
        _sigma("beta_d", 19.9),
        _sigma("beta_min", 0.1),
        Float("eps_s", 0.001, min=0.0, max=1.0, step=0.0001, round=False),
    )

    def run(self, steps: int, beta_d: float, beta_min: float, eps_s: float) -> tuple:
        return (vp(steps, beta_d, beta_min, eps_s),)


class SDTurboScheduler(_FormulaScheduler):
    description = "SD-Turbo's few-step schedule: the model's sigmas at timesteps 999, 899, ..., then 0."
    inputs = (
        Input("model", "MODEL"),
        Int("steps", 1, min=1, max=10),
        Float("denoise", 1.0, min=0, max=1.0, step=0.01),
    )

    def run(self, model: Any, steps: int, denoise: float) -> tuple:
        return (sd_turbo(model.scheduler_config, steps, denoise),)


class BetaSamplingScheduler(_FormulaScheduler):
    description = (
        "The model's noise levels at timesteps spaced by the Beta(alpha, beta) distribution's quantiles "
        "(Lee et al., 2024; the 'beta' scheduler with its shape parameters): below 1, more steps at both ends."
    )
    inputs = (
        Input("model", "MODEL"),
        _steps(),
        Float("alpha", 0.6, min=0.0, max=50.0, step=0.01, round=False),
        Float("beta", 0.6, min=0.0, max=50.0, step=0.01, round=False),
    )

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        for name in ("alpha", "beta"):
            if isinstance(inputs.get(name), (int, float)) and inputs[name] <= 0:
                return f"{name} must be above 0 (a Beta distribution's shape parameter)"
        return True

    def run(self, model: Any, steps: int, alpha: float, beta: float) -> tuple:
        from .diffusion.schedules import beta_schedule

        return (beta_schedule(model.scheduler_config, steps, alpha, beta),)


class AlignYourStepsScheduler(_FormulaScheduler):
    description = (
        'Align Your Steps (Sabour et al., "Align Your Steps: Optimizing Sampling Schedules in Diffusion '
        'Models", 2024): the noise levels NVIDIA optimised for SD1.5, SDXL and SVD at 10 steps, '
        "interpolated log-linearly for other step counts; denoise keeps the last steps."
    )
    inputs = (
        Combo("model_type", ["SD1", "SDXL", "SVD"]),
        _steps(10),
        Float("denoise", 1.0, min=0.0, max=1.0, step=0.01),
    )

    def run(self, model_type: str, steps: int, denoise: float) -> tuple:
        return (align_your_steps(model_type, steps, denoise),)


NODES = [
    ExponentialScheduler,
    PolyexponentialScheduler,
    LaplaceScheduler,
    VPScheduler,
    SDTurboScheduler,
    BetaSamplingScheduler,
    AlignYourStepsScheduler,
]
