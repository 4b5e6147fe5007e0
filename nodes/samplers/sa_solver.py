"""ComfyUI's SA-Solver: ``sa_solver``, ``sa_solver_pece`` and the node ``SamplerSASolver``.

Xue, Yi, Luo, Zhang, Sun, Li, Ma, "SA-Solver: Stochastic Adams Solver for Fast Sampling of
Diffusion Models" (NeurIPS 2023, arXiv 2309.05019), in the data prediction as ComfyUI 0.8.0 runs
it, so that a seed gives ComfyUI's picture. In k-diffusion's space (``x = x0 + sigma * eps``,
signal scale 1) with ``lambda = -log sigma``, a step from ``s`` to ``t`` has ``h = lambda_t -
lambda_s``; ``tau`` is the step's stochastic strength and ``k = 1 + tau^2``.

* **Predictor** (stochastic Adams-Bashforth of order ``p``): ``x_t = (t / s) e^(-tau^2 h) x +
  sum_j b_j D_j + t sqrt(1 - e^(-2 tau^2 h)) s_noise z``, over the last ``p`` clean estimates
  ``D_j`` at ``lambda_j``; ``b_j = k int_s^t e^(k (l - lambda_t)) L_j(l) dl`` with ``L_j`` the
  Lagrange basis polynomial through those ``lambda_j`` that is 1 at ``lambda_j``.
* **Corrector** (stochastic Adams-Moulton of order ``c``, from the second step on): once the
  model has seen the predicted ``x_t``, the step that led there is taken again from its start
  with the new estimate among the ``D_j``, the same ``tau`` and the same noise ``z``. Not in a
  step to sigma 0, except with ``pece``, which evaluates the model again at the corrected
  sample and lets that estimate replace the predicted one (two model calls a step).

``tau`` is ``eta`` where the step's target sigma lies in the SDE interval (the sigmas of
``sde_start_percent`` 0.2 and ``sde_end_percent`` 0.8 of the model's schedule, ComfyUI's
default) and 0 elsewhere (the ODE solver). With a schedule ending in 0 the orders fall towards
the end (the last nonzero step is first order), as ComfyUI does. ``simple_order_2`` uses the
paper's simplified second-order weights (its appendix D) wherever two estimates are used.
``z`` is ComfyUI's ``default_noise_sampler``: the run's seeded generator
(:meth:`~nodes.diffusion.loops.LoopRun.noise_like`), one draw per predictor step with noise.

The weights are computed in float64 from the closed form of the exponential moments (ComfyUI:
float32 and a Vandermonde solve), a few 1e-6 of the sample's scale apart; at orders 6 ComfyUI's
float32 solve loses digits (its weights up to 1.7e-3 off) and the samples are up to 7e-4 apart.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nodes.api import Boolean, Float, Input, Int, Node, Output

from .dpmpp_sde import masked_denoise

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

NAMES: tuple[str, ...] = ("sa_solver", "sa_solver_pece")
#: ComfyUI's default SDE interval, in percent of the model's schedule
SDE_PERCENTS: tuple[float, float] = (0.2, 0.8)
MAX_ORDER = 6


def exponential_moments(h: float, rate: float, count: int) -> list[float]:
    """``rate * int_{-h}^0 e^(rate u) u^p du`` for ``p < count``, by parts from ``p = 0``."""
    decay = math.exp(-rate * h)
    moments = [-math.expm1(-rate * h)]
    for p in range(1, count):
        moments.append(-((-h) ** p) * decay - p / rate * moments[-1])
    return moments


def adams_weights(nodes: list[float], lam_s: float, lam_t: float, tau: float) -> list[float]:
    """``k int e^(k (l - lambda_t)) L_j(l) dl`` from ``lam_s`` to ``lam_t`` for the Lagrange basis
    through ``nodes`` (``k = 1 + tau^2``), in the shifted variable ``u = l - lambda_t``."""
    shifted = [node - lam_t for node in nodes]
    moments = exponential_moments(lam_t - lam_s, 1.0 + tau * tau, len(nodes))
    weights = []
    for j, here in enumerate(shifted):
        coefficients = [1.0]  # prod over the other nodes of (u - u_m) / (u_j - u_m), lowest power first
        for m, other in enumerate(shifted):
            if m == j:
                continue
            scale = here - other
            raised = [0.0, *coefficients]
            coefficients = [
                (raised[p] - other * (coefficients[p] if p < len(coefficients) else 0.0)) / scale
                for p in range(len(raised))
            ]
        weights.append(sum(c * moment for c, moment in zip(coefficients, moments, strict=True)))
    return weights


def simple_order_2_weights(nodes: list[float], lam_s: float, lam_t: float, tau: float, corrector: bool) -> list[float]:
    """The paper's simplified second-order weights (older estimate first)."""
    rate, h = 1.0 + tau * tau, lam_t - lam_s
    whole = -math.expm1(-rate * h)
    if corrector:
        newer = 0.5 * rate * h
        return [whole - newer, newer]
    older = 0.5 * rate * h * h / (nodes[0] - lam_s)
    return [older, whole - older]


class SASolverSampler:
    """SA-Solver (module docstring). ``sde_sigmas`` is the SDE interval ``(start, end)`` in
    sigmas; ``None``: ComfyUI's default percents of the run's model's schedule."""

    def __init__(
        self,
        eta: float = 1.0,
        s_noise: float = 1.0,
        predictor_order: int = 3,
        corrector_order: int = 4,
        use_pece: bool = False,
        simple_order_2: bool = False,
        sde_sigmas: tuple[float, float] | None = None,
    ) -> None:
        if eta < 0 or s_noise < 0:
            raise ValueError(f"eta ({eta}) and s_noise ({s_noise}) must be 0 or more")
        if not 1 <= predictor_order <= MAX_ORDER or not 0 <= corrector_order <= MAX_ORDER:
            raise ValueError(
                f"predictor_order must be 1 to {MAX_ORDER} and corrector_order 0 to {MAX_ORDER}, "
                f"got {predictor_order}, {corrector_order}"
            )
        self.eta, self.s_noise = float(eta), float(s_noise)
        self.predictor_order, self.corrector_order = int(predictor_order), int(corrector_order)
        self.use_pece, self.simple_order_2 = bool(use_pece), bool(simple_order_2)
        self.sde_sigmas = None if sde_sigmas is None else (float(sde_sigmas[0]), float(sde_sigmas[1]))

    def __repr__(self) -> str:
        return (
            f"SASolverSampler(eta={self.eta}, s_noise={self.s_noise}, predictor_order={self.predictor_order}, "
            f"corrector_order={self.corrector_order}, use_pece={self.use_pece}, "
            f"simple_order_2={self.simple_order_2}, sde_sigmas={self.sde_sigmas})"
        )

    def interval(self, run: LoopRun) -> tuple[float, float]:
        """The SDE interval of this run, in sigmas: the set one, or ComfyUI's default percents
        of the run's model's schedule (looked up per run: one SAMPLER may serve several models)."""
        if self.sde_sigmas is not None:
            return self.sde_sigmas
        from nodes.diffusion.control import percent_to_sigma

        config = run.model.scheduler_config
        return percent_to_sigma(SDE_PERCENTS[0], config), percent_to_sigma(SDE_PERCENTS[1], config)

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = [float(v) for v in run.sigmas]
        if any(a == b for a, b in zip(sigmas, sigmas[1:], strict=False)):
            raise ValueError("SA-Solver needs distinct sigmas: the schedule repeats a noise level")
        lambdas = [-math.log(v) if v > 0 else math.inf for v in sigmas]
        start, end = self.interval(run) if self.eta > 0 else (0.0, 0.0)
        x = x_pred = denoised = run.x
        estimates: list[torch.Tensor] = []
        last: tuple[float, torch.Tensor | None] = (0.0, None)  # the last predictor step's tau and noise
        for i in range(run.steps):
            denoised = masked_denoise(run, x_pred, run.sigmas[i])
            estimates = [*estimates, denoised][-max(self.predictor_order, self.corrector_order) :]
            p, c = self._orders(i, len(estimates), sigmas)
            if c == 0:
                x = x_pred
            else:
                x = self._advance(x, estimates[-c:], lambdas[i - c + 1 : i + 1], sigmas, i - 1, last[0], True)
                if last[1] is not None:
                    x = x + last[1]
                if self.use_pece:
                    denoised = masked_denoise(run, x, run.sigmas[i])
                    estimates[-1] = denoised
            if sigmas[i + 1] == 0:
                x_pred = denoised
            else:
                tau = self.eta if self.eta > 0 and start >= sigmas[i + 1] >= end else 0.0
                x_pred = self._advance(x, estimates[-p:], lambdas[i - p + 1 : i + 1], sigmas, i, tau, False)
                last = (tau, self._noise(run, x_pred, tau, lambdas[i + 1] - lambdas[i], sigmas[i + 1]))
                if last[1] is not None:
                    x_pred = x_pred + last[1]
            x_pred = run.step_done(i + 1, x_pred, denoised)
        return run.finish(x_pred, denoised)

    def _orders(self, i: int, known: int, sigmas: list[float]) -> tuple[int, int]:
        """The predictor's and the corrector's order in step ``i`` (ComfyUI's rules)."""
        predictor = min(self.predictor_order, known)
        to_zero = sigmas[i + 1] == 0
        corrector = 0 if i == 0 or (to_zero and not self.use_pece) else min(self.corrector_order, known)
        if sigmas[-1] == 0:  # lower the orders towards the end
            predictor = min(predictor, len(sigmas) - 2 - i)
            corrector = min(corrector, len(sigmas) - 1 - i)
        return predictor, corrector

    def _advance(
        self,
        x: torch.Tensor,
        estimates: list[torch.Tensor],
        nodes: list[float],
        sigmas: list[float],
        i: int,
        tau: float,
        corrector: bool,
    ) -> torch.Tensor:
        """The noiseless part of a step from ``sigmas[i]`` to ``sigmas[i + 1]``."""
        s, t = sigmas[i], sigmas[i + 1]
        lam_s, lam_t = -math.log(s), -math.log(t)
        if self.simple_order_2 and len(nodes) == 2:
            weights = simple_order_2_weights(nodes, lam_s, lam_t, tau, corrector)
        else:
            weights = adams_weights(nodes, lam_s, lam_t, tau)
        x = x * ((t / s) * math.exp(-tau * tau * (lam_t - lam_s)))
        for weight, estimate in zip(weights, estimates, strict=True):
            x = x + estimate * weight
        return x

    def _noise(self, run: LoopRun, x: torch.Tensor, tau: float, h: float, t: float) -> torch.Tensor | None:
        if tau <= 0 or self.s_noise <= 0:
            return None
        return run.noise_like(x) * (t * math.sqrt(-math.expm1(-2 * tau * tau * h)) * self.s_noise)


def named_sampler(name: str) -> Any:
    """The SAMPLER for one of :data:`NAMES` with ComfyUI's defaults."""
    if name not in NAMES:
        raise ValueError(f"not an SA-Solver sampler name: {name!r}")
    return SASolverSampler(use_pece=name == "sa_solver_pece")


def _float(name: str, default: float, maximum: float, tooltip: str, step: float = 0.01) -> Any:
    return Float(name, default, min=0.0, max=maximum, step=step, round=False, tooltip=tooltip)


class SamplerSASolver(Node):
    category = "sampling/custom_sampling/samplers"
    description = (
        "SA-Solver (Xue et al., NeurIPS 2023, arXiv 2309.05019), ComfyUI's sa_solver: a stochastic Adams "
        "predictor-corrector, one model call a step (two with use_pece), noise from the noise seed "
        "inside the SDE interval and none outside it."
    )
    inputs = (
        Input(
            "model", "MODEL", tooltip="The model whose noise schedule turns the SDE interval's percents into sigmas."
        ),
        _float("eta", 1.0, 10.0, "Stochastic strength inside the SDE interval: 0 is the ODE solver."),
        Float("sde_start_percent", 0.2, min=0.0, max=1.0, step=0.001, tooltip="Where the SDE interval begins."),
        Float("sde_end_percent", 0.8, min=0.0, max=1.0, step=0.001, tooltip="Where the SDE interval ends."),
        _float("s_noise", 1.0, 100.0, "Multiplies the added noise."),
        Int("predictor_order", 3, min=1, max=MAX_ORDER, tooltip="How many past estimates the predictor uses."),
        Int(
            "corrector_order",
            4,
            min=0,
            max=MAX_ORDER,
            tooltip="How many estimates the corrector uses (0: no corrector).",
        ),
        Boolean("use_pece", tooltip="Evaluate the model again at the corrected sample (two model calls a step)."),
        Boolean("simple_order_2", tooltip="The paper's simplified second-order weights."),
    )
    outputs = (Output("SAMPLER"),)

    def run(
        self,
        model: Any,
        eta: float,
        sde_start_percent: float,
        sde_end_percent: float,
        s_noise: float,
        predictor_order: int,
        corrector_order: int,
        use_pece: bool,
        simple_order_2: bool,
    ) -> tuple:
        from nodes.diffusion.control import percent_to_sigma

        config = model.scheduler_config
        interval = (percent_to_sigma(sde_start_percent, config), percent_to_sigma(sde_end_percent, config))
        sampler = SASolverSampler(eta, s_noise, predictor_order, corrector_order, use_pece, simple_order_2, interval)
        return (sampler,)


NODES = [SamplerSASolver]
