"""ComfyUI's other SDE samplers: ``er_sde``, ``seeds_2``, ``seeds_3`` and ``exp_heun_2_x0_sde``.

In k-diffusion's space (``x = x0 + sigma * eps``, signal scale 1, the space of Weft's epsilon
and v models) the half log-SNR is ``lambda = -log sigma``; a step from ``s`` to ``t`` has
``h = log(s / t)``, ``D`` is the model's clean estimate and ``z`` standard normal noise. The
noise is ComfyUI's ``default_noise_sampler``: the run's seeded generator
(:meth:`~nodes.diffusion.loops.LoopRun.noise_like`), one draw per noise term, as ComfyUI draws.

* ``er_sde``: VP ER-SDE-Solver-3 of Cui et al., "Elucidating the solution space of extended
  reverse-time SDE for diffusion models" (arXiv 2309.06169), with ComfyUI's noise scale
  function ``phi(l) = l (e^(l^0.3) + 10)`` of ``l = sigma``. With ``r = phi(t) / phi(s)``:
  ``x_t = r x + (1 - r) D + sqrt(t^2 - r^2 s^2) z`` (first order), plus from the second step
  ``(t - s + phi(t) S1) D'`` and from the third ``((t - s)^2 / 2 + phi(t) S2) D''``, with ``D'``,
  ``D''`` the divided differences of the estimates in ``sigma`` (``D''`` over half the span, as
  the authors' code and ComfyUI) and ``S1 = int 1/phi``, ``S2 = int (l - s)/phi`` from ``t``
  to ``s`` by the 200-point left Riemann sum the authors and ComfyUI use.
* ``seeds_2``, ``seeds_3``, ``exp_heun_2_x0_sde``: SEEDS of Gonzalez et al., "SEEDS: Exponential
  SDE Solvers for Fast High-Quality Sampling from Diffusion Models" (NeurIPS 2023, arXiv
  2305.14267), in the data prediction with ``eta`` (1: the SDE, 0: the ODE). A stage from ``s``
  to ``u = s e^(-c h)`` is ``x_u = (u / s) e^(-c h eta) x - expm1(-c h (1 + eta)) D_mix`` plus
  the noise ``u sqrt(1 - e^(-2 c h eta)) z``; the later stages reuse the earlier stages' noise,
  decayed by ``e^(-(c_j - c_i) h eta)``, so one Brownian path runs through the step. SEEDS-2
  (``r`` 1/2, ``phi_1``: the estimate ``(1 - 1/(2r)) D + 1/(2r) D(u)``; ``exp_heun_2_x0_sde``:
  ``r`` 1 and the ``phi_2`` weights ``b2 = h phi_2 / r``), SEEDS-3 (``r_1`` 1/3, ``r_2`` 2/3).

A step to sigma 0 returns the clean estimate. Coefficients are computed in float64 (ComfyUI:
float32), a difference of about 1e-7 relative.

Nodes: ``SamplerER_SDE`` (ER-SDE's noise scale, or the reverse-time SDE's ``l^(eta + 1)``, or the
ODE) and ``SamplerSEEDS2`` (SEEDS-2 with any ``r``, ``eta``, ``s_noise`` and weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nodes.api import Combo, Float, Int, Node, Output

from .dpmpp_sde import masked_denoise

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

NAMES: tuple[str, ...] = ("exp_heun_2_x0_sde", "er_sde", "seeds_2", "seeds_3")
#: points of ER-SDE's Riemann sums (the authors' and ComfyUI's choice)
ER_SDE_POINTS = 200


def er_sde_scale(level: float) -> float:
    """ComfyUI's (and the authors') default ER-SDE noise scale function ``l (e^(l^0.3) + 10)``."""
    return level * (math.exp(level**0.3) + 10.0)


def er_sde_integrals(s: float, t: float, scale: Callable[[float], float] = er_sde_scale) -> tuple[float, float]:
    """``(int 1/phi, int (l - s)/phi)`` from ``t`` to ``s`` by the left Riemann sum from ``t``."""
    width = (s - t) / ER_SDE_POINTS
    levels = [t + k * width for k in range(ER_SDE_POINTS)]
    scales = [scale(level) for level in levels]
    first = sum(1.0 / scale for scale in scales) * width
    second = sum((level - s) / scale for level, scale in zip(levels, scales, strict=True)) * width
    return first, second


class ERSDESampler:
    """``er_sde``: ER-SDE-Solver-3 (module docstring); ``max_stage`` 1 to 3. ``reverse_eta``
    ``None`` keeps ER-SDE's noise scale; a number ``eta`` makes it ``l^(eta + 1)``, the
    reverse-time SDE of strength ``eta`` (0: the probability-flow ODE), as ComfyUI's node does."""

    def __init__(self, s_noise: float = 1.0, max_stage: int = 3, reverse_eta: float | None = None) -> None:
        if s_noise < 0 or max_stage not in (1, 2, 3):
            raise ValueError(f"s_noise must be 0 or more and max_stage 1, 2 or 3, got {s_noise}, {max_stage}")
        if reverse_eta is not None and reverse_eta < 0:
            raise ValueError(f"eta must be 0 or more, got {reverse_eta}")
        self.s_noise, self.max_stage = float(s_noise), int(max_stage)
        self.reverse_eta = None if reverse_eta is None else float(reverse_eta)

    def __repr__(self) -> str:
        return f"ERSDESampler(s_noise={self.s_noise}, max_stage={self.max_stage}, reverse_eta={self.reverse_eta})"

    def scale(self, level: float) -> float:
        """The noise scale function ``phi`` at ``level`` (a sigma)."""
        return er_sde_scale(level) if self.reverse_eta is None else level ** (self.reverse_eta + 1.0)

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = run.sigmas.to(run.device)
        values = [float(v) for v in run.sigmas]
        x = denoised = run.x
        old: torch.Tensor | None = None
        old_d: torch.Tensor | None = None
        for i in range(run.steps):
            s, t = values[i], values[i + 1]
            denoised = masked_denoise(run, x, sigmas[i])
            if t == 0:
                x = denoised
            else:
                r = self.scale(t) / self.scale(s)
                x = x * r + denoised * (1 - r)
                if min(self.max_stage, i + 1) >= 2 and old is not None:
                    x, old_d = self._corrections(x, denoised, old, old_d, values, i)
                if self.s_noise > 0:
                    scale = math.sqrt(max(t * t - s * s * r * r, 0.0)) * self.s_noise
                    x = x + run.noise_like(x) * scale
            old = denoised
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)

    def _corrections(
        self,
        x: torch.Tensor,
        denoised: torch.Tensor,
        old: torch.Tensor,
        old_d: torch.Tensor | None,
        values: list[float],
        i: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = values[i], values[i + 1]
        first, second = er_sde_integrals(s, t, self.scale)
        scale_t = self.scale(t)
        d = (denoised - old) / (s - values[i - 1])
        x = x + d * ((t - s) + first * scale_t)
        if self.max_stage >= 3 and i >= 2 and old_d is not None:
            d2 = (d - old_d) / ((s - values[i - 2]) / 2)
            x = x + d2 * ((t - s) ** 2 / 2 + second * scale_t)
        return x, d


class SEEDSSampler:
    """SEEDS-2 (``stages`` (r,), ``solver_type`` phi_1 or phi_2) and SEEDS-3 (``stages`` (r_1, r_2))."""

    def __init__(
        self,
        stages: tuple[float, ...] = (0.5,),
        solver_type: str = "phi_1",
        eta: float = 1.0,
        s_noise: float = 1.0,
    ) -> None:
        if eta < 0 or s_noise < 0:
            raise ValueError(f"eta ({eta}) and s_noise ({s_noise}) must be 0 or more")
        if solver_type not in ("phi_1", "phi_2") or len(stages) not in (1, 2) or not all(c > 0 for c in stages):
            raise ValueError(f"not a SEEDS set-up: stages {stages}, solver_type {solver_type!r}")
        self.stages, self.solver_type = tuple(float(c) for c in stages), solver_type
        self.eta, self.s_noise = float(eta), float(s_noise)

    def __repr__(self) -> str:
        return (
            f"SEEDSSampler(stages={self.stages}, solver_type={self.solver_type!r}, eta={self.eta}, "
            f"s_noise={self.s_noise})"
        )

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        values = [float(v) for v in run.sigmas]
        x = denoised = run.x
        for i in range(run.steps):
            s, t = values[i], values[i + 1]
            denoised = masked_denoise(run, x, run.sigmas[i])
            if t == 0:
                x = denoised
            elif t != s:  # a repeated sigma is no step (ComfyUI: NaN)
                x = self._step(run, x, denoised, s, t)
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)

    def _stage(self, x: torch.Tensor, combo: torch.Tensor, c: float, h: float) -> torch.Tensor:
        """A stage from ``s`` to ``s e^(-c h)``: ``combo`` is the estimates' weighted sum."""
        return x * math.exp(-c * h * (1 + self.eta)) - combo

    def _step(self, run: LoopRun, x: torch.Tensor, denoised: torch.Tensor, s: float, t: float) -> torch.Tensor:
        import torch

        h, noisy = math.log(s / t), self.eta > 0 and self.s_noise > 0
        lam_s, lam_t = -math.log(s), -math.log(t)
        levels = [math.exp(-(lam_s + c * (lam_t - lam_s))) for c in self.stages]
        g = h * (1 + self.eta)
        c1 = self.stages[0]  # stage 1: first order to the first intermediate level
        x_stage = self._stage(x, denoised * math.expm1(-c1 * g), c1, h)
        brownian = None
        if noisy:
            brownian = run.noise_like(x) * math.sqrt(-math.expm1(-2 * c1 * h * self.eta))
            x_stage = x_stage + brownian * (levels[0] * self.s_noise)
        last, latest = c1, masked_denoise(run, x_stage, torch.tensor(levels[0], dtype=torch.float32))
        if len(self.stages) == 2:  # SEEDS-3's second stage, to r_2, with the phi_2 weights
            c2 = self.stages[1]
            a2 = c2 / c1 * h_phi_2(-c2 * g)
            x_stage = self._stage(x, denoised * (math.expm1(-c2 * g) - a2) + latest * a2, c2, h)
            if brownian is not None:
                brownian = self._continue(run, x, brownian, c1 - c2, h)
                x_stage = x_stage + brownian * (levels[1] * self.s_noise)
            last, latest = c2, masked_denoise(run, x_stage, torch.tensor(levels[1], dtype=torch.float32))
        if self.solver_type == "phi_1" and len(self.stages) == 1:
            combo = torch.lerp(denoised, latest, 1 / (2 * last)) * math.expm1(-g)
        else:
            b2 = h_phi_2(-g) / last
            combo = denoised * (math.expm1(-g) - b2) + latest * b2
        x = self._stage(x, combo, 1.0, h)
        if brownian is not None:
            x = x + self._continue(run, x, brownian, last - 1, h) * (t * self.s_noise)
        return x

    def _continue(self, run: LoopRun, x: torch.Tensor, brownian: torch.Tensor, gap: float, h: float) -> torch.Tensor:
        """The stage noise carried over a gap ``gap * h`` (negative) with a fresh draw."""
        factor = gap * h * self.eta
        return brownian * math.exp(factor) + run.noise_like(x) * math.sqrt(-math.expm1(2 * factor))


def h_phi_2(z: float) -> float:
    """``z phi_2(z) = (e^z - 1 - z) / z``."""
    return (math.expm1(z) - z) / z


def named_sampler(name: str) -> Any:
    """The SAMPLER for one of :data:`NAMES` with ComfyUI's defaults."""
    if name == "er_sde":
        return ERSDESampler()
    if name == "seeds_2":
        return SEEDSSampler((0.5,), "phi_1")
    if name == "exp_heun_2_x0_sde":
        return SEEDSSampler((1.0,), "phi_2")
    if name == "seeds_3":
        return SEEDSSampler((1 / 3, 2 / 3), "phi_2")
    raise ValueError(f"not an ER-SDE or SEEDS sampler name: {name!r}")


def _float(name: str, default: float, tooltip: str, minimum: float = 0.0, maximum: float = 100.0) -> Any:
    return Float(name, default, min=minimum, max=maximum, step=0.01, round=False, tooltip=tooltip)


#: SamplerER_SDE's solver types (ComfyUI's names and order)
ER_SDE_SOLVER_TYPES: tuple[str, ...] = ("ER-SDE", "Reverse-time SDE", "ODE")


class SamplerER_SDE(Node):
    category = "sampling/custom_sampling/samplers"
    description = (
        "ER-SDE-Solver-3 (Cui et al., arXiv 2309.06169), ComfyUI's er_sde: one model call a step, noise from "
        "the noise seed. Reverse-time SDE and ODE swap ER-SDE's noise scale for sigma^(eta + 1)."
    )
    inputs = (
        Combo(
            "solver_type", list(ER_SDE_SOLVER_TYPES), tooltip="ER-SDE's noise scale, the reverse-time SDE's, or none."
        ),
        Int("max_stage", 3, min=1, max=3, tooltip="The solver's order: how many past estimates a step uses."),
        _float(
            "eta",
            1.0,
            "Stochastic strength of the reverse-time SDE; 0 is the ODE. The ER-SDE solver type ignores it.",
        ),
        _float("s_noise", 1.0, "Multiplies the added noise."),
    )
    outputs = (Output("SAMPLER"),)

    def run(self, solver_type: str, max_stage: int, eta: float, s_noise: float) -> tuple:
        if solver_type not in ER_SDE_SOLVER_TYPES:
            raise ValueError(f"solver_type must be one of {', '.join(ER_SDE_SOLVER_TYPES)}, got {solver_type!r}")
        if solver_type == "ODE" or (solver_type == "Reverse-time SDE" and eta == 0):
            eta, s_noise = 0.0, 0.0
        return (ERSDESampler(s_noise, max_stage, None if solver_type == "ER-SDE" else eta),)


class SamplerSEEDS2(Node):
    category = "sampling/custom_sampling/samplers"
    description = (
        "SEEDS-2 (Gonzalez et al., NeurIPS 2023, arXiv 2305.14267): two model calls a step. The defaults are "
        "ComfyUI's seeds_2; solver_type phi_2 with r 1 is exp_heun_2_x0 (eta 0) or exp_heun_2_x0_sde (eta 1)."
    )
    inputs = (
        Combo("solver_type", ["phi_1", "phi_2"], tooltip="How the step combines its two estimates."),
        _float("eta", 1.0, "Stochastic strength: 0 is the ODE solver."),
        _float("s_noise", 1.0, "Multiplies the added noise."),
        _float("r", 0.5, "Where the second model call sits in the step, in log sigma.", 0.01, 1.0),
    )
    outputs = (Output("SAMPLER"),)

    def run(self, solver_type: str, eta: float, s_noise: float, r: float) -> tuple:
        return (SEEDSSampler((r,), solver_type, eta, s_noise),)


NODES = [SamplerER_SDE, SamplerSEEDS2]
