"""ComfyUI's SDE samplers with Brownian-tree noise: ``dpmpp_sde``, ``dpmpp_2m_sde``,
``dpmpp_2m_sde_heun``, ``dpmpp_3m_sde`` and their ``_gpu`` twins, and the nodes that set them up.

Lu, Zhou, Bao, Chen, Li, Zhu, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models" (arXiv 2211.01095), its SDE solvers as k-diffusion and ComfyUI 0.8.0
implement them, so that a seed gives ComfyUI's picture. In k-diffusion's space (``x = x0 +
sigma * eps``, signal scale 1) with ``lambda = -log sigma``, a step from ``s`` to ``t`` has
``h = log(s / t)``; ``D`` is the model's clean estimate, ``z`` standard normal noise from the
Brownian tree of the run's seed (:class:`nodes.diffusion.brownian.BrownianTreeNoise`), ``eta``
scales the noise (1: the paper's SDE, 0: the ODE) and ``s_noise`` multiplies it.

* **Multistep** (``dpmpp_2m_sde``, ``_heun``, ``dpmpp_3m_sde``), with ``g = (1 + eta) h``:
  ``x_t = e^(-g) x + (1 - e^(-g)) D + t sqrt(1 - e^(-2 eta h)) s_noise z`` (SDE-DPM-Solver++-1),
  plus the multistep corrections from the previous estimates, ``r = h_prev / h``:
  midpoint ``(1 - e^(-g)) / 2 * (D - D_prev) / r`` (the paper's SDE-DPM-Solver++(2M)); heun
  ``phi2 (D - D_prev) / r`` with ``phi2 = 1 - (1 - e^(-g)) / g``; 3M (from the third step on)
  ``phi2 d1 - phi3 d2`` with ``phi3 = phi2 / g - 1/2`` and ``d1``, ``d2`` the first and second
  divided differences of the last three estimates in ``lambda`` (3M's second step is heun's).
* **Single step** (``dpmpp_sde``, DPM-Solver++(2S) with noise): an ancestral first-order half
  step to ``s1 = e^-(lambda_s + r h)`` (``r = 1/2``: the geometric midpoint), a second model call
  there, then an ancestral first-order step from ``s`` to ``t`` with the estimate ``(1 - 1/(2r))
  D + 1/(2r) D(s1)``. An ancestral step to ``u`` goes down to ``u_down`` and adds ``u_up z``
  (``u_up = min(u, eta sqrt(u^2 (s^2 - u^2) / s^2))``, ``u_down = sqrt(u^2 - u_up^2)``).

A step to sigma 0 returns the clean estimate. ComfyUI's intermediate noise level ``s1`` is
computed in float32 on the sample's device here too: the Brownian tree rounds query times to
1e-6, so a float64 ``s1`` would sometimes read another point of the path.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nodes.api import Combo, Float, Node, Output

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.brownian import BrownianTreeNoise
    from nodes.diffusion.loops import LoopRun

#: ComfyUI's sampler names served here (``_gpu``: the Brownian tree lives on the sample's device)
NAMES: tuple[str, ...] = (
    "dpmpp_sde",
    "dpmpp_sde_gpu",
    "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun",
    "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde",
    "dpmpp_3m_sde_gpu",
)
SOLVER_TYPES: tuple[str, ...] = ("midpoint", "heun")
#: the nodes' choice of where the Brownian tree is built (ComfyUI's order: gpu is the default)
NOISE_DEVICES: tuple[str, ...] = ("gpu", "cpu")


def brownian_noise(run: LoopRun, eta: float, s_noise: float, noise_device: str) -> BrownianTreeNoise | None:
    """The run's Brownian-tree noise, or ``None`` when the sampler adds none (``eta`` or
    ``s_noise`` 0: ComfyUI then never asks its tree)."""
    if not (eta > 0 and s_noise > 0):
        return None
    from nodes.diffusion.brownian import BrownianTreeNoise

    return BrownianTreeNoise(run.x, run.sigmas, run.seed, on_cpu=noise_device == "cpu")


def ancestral_step(sigma: float, to: float, eta: float) -> tuple[float, float]:
    """``(down, up)`` of an ancestral step from ``sigma`` to ``to``: go down to ``down``
    deterministically, then noise of standard deviation ``up`` brings the sample to ``to``."""
    if not eta:
        return to, 0.0
    up = min(to, eta * math.sqrt(max(to * to * (sigma * sigma - to * to) / (sigma * sigma), 0.0)))
    return math.sqrt(max(to * to - up * up, 0.0)), up


def masked_denoise(run: LoopRun, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The clean estimate at ``sigma``: ``run.denoise``, which masks every call's input and
    estimate as ComfyUI does when inpainting (``nodes/diffusion/inpainting.py``). Kept under
    this name for the samplers that call it."""
    return run.denoise(x, sigma)


def _check(eta: float, s_noise: float, noise_device: str) -> None:
    if eta < 0 or s_noise < 0:
        raise ValueError(f"eta ({eta}) and s_noise ({s_noise}) must be 0 or more")
    if noise_device not in NOISE_DEVICES:
        raise ValueError(f"noise_device must be one of {', '.join(NOISE_DEVICES)}, got {noise_device!r}")


class DPMPPSDESampler:
    """``dpmpp_sde``: DPM-Solver++(2S) with Brownian-tree noise, two model calls per step."""

    def __init__(self, eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5, noise_device: str = "cpu") -> None:
        _check(eta, s_noise, noise_device)
        if not r > 0:
            raise ValueError(f"r must be above 0 (the midpoint's place in the step; 0.5 halves it), got {r}")
        self.eta, self.s_noise, self.r, self.noise_device = float(eta), float(s_noise), float(r), noise_device

    def __repr__(self) -> str:
        return (
            f"DPMPPSDESampler(eta={self.eta}, s_noise={self.s_noise}, r={self.r}, noise_device={self.noise_device!r})"
        )

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = run.sigmas.to(run.device)  # float32 where the sample is, as ComfyUI's
        noise = brownian_noise(run, self.eta, self.s_noise, self.noise_device)
        x = denoised = run.x
        for i in range(run.steps):
            denoised = masked_denoise(run, x, sigmas[i])
            if float(sigmas[i + 1]) == 0:
                x = denoised
            elif float(sigmas[i + 1]) != float(sigmas[i]):  # a repeated sigma is no step (ComfyUI: NaN)
                x = self._step(run, noise, x, denoised, sigmas[i], sigmas[i + 1])
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)

    def _step(
        self,
        run: LoopRun,
        noise: BrownianTreeNoise | None,
        x: torch.Tensor,
        denoised: torch.Tensor,
        sigma: torch.Tensor,
        sigma_next: torch.Tensor,
    ) -> torch.Tensor:
        import torch

        lam, lam_next = -torch.log(sigma), -torch.log(sigma_next)
        sigma_mid = torch.exp(-(lam + self.r * (lam_next - lam)))  # float32: the tree's query time
        s, mid, t = float(sigma), float(sigma_mid), float(sigma_next)
        down, up = ancestral_step(s, mid, self.eta)
        x_mid = torch.lerp(denoised, x, down / s)
        if noise is not None:
            x_mid = x_mid + noise(sigma, sigma_mid) * (self.s_noise * up)
        denoised_mid = masked_denoise(run, x_mid, sigma_mid)
        fac = 1 / (2 * self.r)
        estimate = torch.lerp(denoised, denoised_mid, fac)
        down, up = ancestral_step(s, t, self.eta)
        x = torch.lerp(estimate, x, down / s)
        if noise is not None:
            x = x + noise(sigma, sigma_next) * (self.s_noise * up)
        return x


class DPMPPMultistepSDESampler:
    """``dpmpp_2m_sde`` (``solver_type`` midpoint or heun) and ``dpmpp_3m_sde`` (``order`` 3):
    one model call per step, the earlier estimates correcting the first-order SDE step."""

    def __init__(
        self,
        order: int = 2,
        solver_type: str = "midpoint",
        eta: float = 1.0,
        s_noise: float = 1.0,
        noise_device: str = "cpu",
    ) -> None:
        _check(eta, s_noise, noise_device)
        if order not in (2, 3):
            raise ValueError(f"order must be 2 or 3, got {order}")
        if solver_type not in SOLVER_TYPES:
            raise ValueError(f"solver_type must be one of {', '.join(SOLVER_TYPES)}, got {solver_type!r}")
        self.order, self.solver_type = order, solver_type
        self.eta, self.s_noise, self.noise_device = float(eta), float(s_noise), noise_device

    def __repr__(self) -> str:
        return (
            f"DPMPPMultistepSDESampler(order={self.order}, solver_type={self.solver_type!r}, eta={self.eta}, "
            f"s_noise={self.s_noise}, noise_device={self.noise_device!r})"
        )

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = run.sigmas.to(run.device)
        values = [float(s) for s in run.sigmas]
        noise = brownian_noise(run, self.eta, self.s_noise, self.noise_device)
        x = denoised = run.x
        history: list[tuple[torch.Tensor, float | None]] = []  # (estimate, its step's h), newest first
        h: float | None = None
        for i in range(run.steps):
            sigma, sigma_next = values[i], values[i + 1]
            denoised = masked_denoise(run, x, sigmas[i])
            if sigma_next == 0:
                x = denoised
            elif sigma_next != sigma:  # a repeated sigma is no step (ComfyUI: NaN)
                h = math.log(sigma / sigma_next)
                x = self._step(x, denoised, history, h)
                if noise is not None:
                    scale = sigma_next * math.sqrt(-math.expm1(-2 * h * self.eta)) * self.s_noise
                    x = x + noise(sigmas[i], sigmas[i + 1]) * scale
            history = [(denoised, h), *history][: self.order - 1]
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)

    def _step(
        self, x: torch.Tensor, denoised: torch.Tensor, history: list[tuple[torch.Tensor, float | None]], h: float
    ) -> torch.Tensor:
        """The deterministic part of a step of log size ``h`` (the noise is added after)."""
        g = h * (self.eta + 1)
        gone = -math.expm1(-g)  # 1 - e^(-g), the share of the clean estimate
        x = x * (1 - gone) + denoised * gone
        if not history or history[0][1] is None:
            return x
        phi2 = 1 - gone / g
        previous, h_previous = history[0]
        r0 = h_previous / h
        if self.order == 3 and len(history) == 2 and history[1][1] is not None:
            before, h_before = history[1]
            r1 = h_before / h
            d1_0 = (denoised - previous) / r0
            d1_1 = (previous - before) / r1
            d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1))
            d2 = (d1_0 - d1_1) / (r0 + r1)
            return x + d1 * phi2 - d2 * (phi2 / g - 0.5)
        weight = 0.5 * gone if self.solver_type == "midpoint" and self.order == 2 else phi2
        return x + (denoised - previous) * (weight / r0)


def named_sampler(name: str) -> Any:
    """The SAMPLER for one of :data:`NAMES` with ComfyUI's defaults (eta 1, s_noise 1, r 1/2)."""
    if name not in NAMES:
        raise ValueError(f"not a DPM-Solver++ SDE sampler name: {name!r}")
    base = name.removesuffix("_gpu")
    device = "cpu" if base == name else "gpu"
    if base == "dpmpp_sde":
        return DPMPPSDESampler(noise_device=device)
    if base == "dpmpp_3m_sde":
        return DPMPPMultistepSDESampler(3, "heun", noise_device=device)
    return DPMPPMultistepSDESampler(2, "heun" if base.endswith("_heun") else "midpoint", noise_device=device)


def _float(name: str, default: float, tooltip: str) -> Any:
    return Float(name, default, min=0.0, max=100.0, step=0.01, round=False, tooltip=tooltip)


_ETA = "Noise per step: 1 is the SDE solver of the paper, 0 its ODE (deterministic) solver."
_S_NOISE = "Multiplies the added noise."
_NOISE_DEVICE = (
    "Where the Brownian tree that draws the noise lives: cpu gives the same picture on every machine, "
    "gpu follows the sample's device (faster, but the noise then depends on the device)."
)


def _noise_device() -> Any:
    return Combo("noise_device", list(NOISE_DEVICES), tooltip=_NOISE_DEVICE)


class SamplerDPMPP_SDE(Node):
    category = "sampling/custom_sampling/samplers"
    description = (
        "DPM-Solver++(2S) SDE (Lu et al., arXiv 2211.01095), ComfyUI's dpmpp_sde: two model calls a step, "
        "noise from a Brownian tree of the noise seed, so a seed gives ComfyUI's picture."
    )
    inputs = (
        _float("eta", 1.0, _ETA),
        _float("s_noise", 1.0, _S_NOISE),
        _float("r", 0.5, "Where the second model call sits in the step, in log sigma (0.5: halfway); above 0."),
        _noise_device(),
    )
    outputs = (Output("SAMPLER"),)

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        r = inputs.get("r")
        if isinstance(r, (int, float)) and r <= 0:
            return "r must be above 0: it places the step's second model call (ComfyUI's default is 0.5)"
        return True

    def run(self, eta: float, s_noise: float, r: float, noise_device: str) -> tuple:
        return (DPMPPSDESampler(eta, s_noise, r, noise_device),)


class SamplerDPMPP_2M_SDE(Node):
    category = "sampling/custom_sampling/samplers"
    description = (
        "DPM-Solver++(2M) SDE (Lu et al., arXiv 2211.01095), ComfyUI's dpmpp_2m_sde / dpmpp_2m_sde_heun: "
        "one model call a step, noise from a Brownian tree of the noise seed."
    )
    inputs = (
        Combo(
            "solver_type",
            list(SOLVER_TYPES),
            tooltip="How the previous estimate corrects the step: midpoint (the paper's) or heun.",
        ),
        _float("eta", 1.0, _ETA),
        _float("s_noise", 1.0, _S_NOISE),
        _noise_device(),
    )
    outputs = (Output("SAMPLER"),)

    def run(self, solver_type: str, eta: float, s_noise: float, noise_device: str) -> tuple:
        return (DPMPPMultistepSDESampler(2, solver_type, eta, s_noise, noise_device),)


class SamplerDPMPP_3M_SDE(Node):
    category = "sampling/custom_sampling/samplers"
    description = (
        "DPM-Solver++(3M) SDE, ComfyUI's dpmpp_3m_sde: third-order multistep, one model call a step, "
        "noise from a Brownian tree of the noise seed."
    )
    inputs = (_float("eta", 1.0, _ETA), _float("s_noise", 1.0, _S_NOISE), _noise_device())
    outputs = (Output("SAMPLER"),)

    def run(self, eta: float, s_noise: float, noise_device: str) -> tuple:
        return (DPMPPMultistepSDESampler(3, "heun", eta, s_noise, noise_device),)


NODES = [SamplerDPMPP_SDE, SamplerDPMPP_2M_SDE, SamplerDPMPP_3M_SDE]
