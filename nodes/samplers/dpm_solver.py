"""ComfyUI's ``dpm_fast`` and ``dpm_adaptive``: DPM-Solver with fixed and with adaptive steps.

Lu, Zhou, Bao, Chen, Li, Zhu, "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model
Sampling in Around 10 Steps", NeurIPS 2022 (arXiv 2206.00927).

DPM-Solver integrates the probability-flow ODE with its linear part solved exactly and the
noise prediction expanded in the log noise-to-signal ratio ``lambda = -log(sigma)``. In
k-diffusion's space (``x = x0 + sigma * eps``, signal scale 1) its steps from ``s`` to ``t``
(noise levels, ``h = log(s / t) > 0``) are, with ``eps_s`` the noise prediction at ``(x, s)``:

* order 1: ``x_t = x - (s - t) eps_s`` (DDIM, Euler in sigma);
* order 2, midpoint at fraction ``r1`` of ``h`` (``s1 = s^(1-r1) t^r1``):
  ``u = x - (s - s1) eps_s``, ``x_t = x - (s - t) eps_s - (s - t) / (2 r1) (eps(u, s1) - eps_s)``;
* order 3 (``r1 = 1/3``, ``r2 = 2/3``): ``u1`` as above, ``D1 = eps(u1, s1) - eps_s``,
  ``u2 = x - (s - s2) eps_s - (r2 / r1) ((s - s2) / (r2 h) - s2) D1``,
  ``x_t = x - (s - t) eps_s - ((s - t) / h - t) / r2 (eps(u2, s2) - eps_s)``.

``dpm_fast`` (the paper's DPM-Solver-fast): as many model evaluations as the schedule has steps,
spent on steps uniform in ``lambda`` between the schedule's first and last nonzero sigma, all of
order 3 except the last one or two (3 then 2 and 1 when the count divides by 3).

``dpm_adaptive`` (the paper's DPM-Solver-12/23): every attempt computes a lower- and a
higher-order solution that share their model evaluations (order 3: DPM-Solver-2 with
``r1 = 1/3`` against DPM-Solver-3, three evaluations; order 2: DPM-Solver-1 against -2, two),
measures their difference in the root-mean-square norm scaled by the mixed tolerance
``max(atol, rtol * max(|x_low|, |x_prev|))``, and a step-size controller accepts or rejects the
step and sizes the next one. The controller is the PID digital filter of Söderlind ("Digital
filters in adaptive time-stepping", ACM TOMS 2003) with an arctan limiter: with k-diffusion's
defaults (``pcoeff 0``, ``icoeff 1``, ``dcoeff 0``) it is the paper's elementary controller
``h <- h * (1/E)^(1/order)``, accepting when the factor is at least ``accept_safety`` (0.81 =
0.9^2, the paper's safety 0.9). With ``eta > 0`` each step goes down to the ancestral
``sigma_down`` and fresh noise brings it back up (the controller then assumes order 1.5).

Semantics are ComfyUI's (k-diffusion's): the same parameters and defaults, only the first and
last nonzero sigma of the schedule matter (steps and intermediate sigmas are ignored), and the
result is the sample at that last nonzero sigma, *not* denoised to 0 (for SD's Karras or
exponential schedules that is sigma 0.029, invisible in the image). Differences: the model's
estimate at the start of a rejected step is reused when the step is retried (ComfyUI evaluates
it again: same result, one evaluation fewer per rejection), ``eta > 0`` noise comes from the
run's seeded generator, a one-step schedule ends at the model's smallest sigma (ComfyUI would
return its input), and ``h_init`` must be above 0 (ComfyUI loops forever on 0).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nodes.api import Float, Int, Node, Output

from .adaptive import StepStats, estimated_total, integration_range, tolerance_scale

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

#: ComfyUI's (k-diffusion's) defaults for ``dpm_adaptive``
ADAPTIVE_DEFAULTS: dict[str, float] = {
    "order": 3,
    "rtol": 0.05,
    "atol": 0.0078,
    "h_init": 0.05,
    "pcoeff": 0.0,
    "icoeff": 1.0,
    "dcoeff": 0.0,
    "accept_safety": 0.81,
    "eta": 0.0,
    "s_noise": 1.0,
}


def ancestral_step(sigma_from: float, sigma_to: float, eta: float) -> tuple[float, float]:
    """``(sigma_down, sigma_up)``: step deterministically down to ``sigma_down``, then add fresh
    noise of size ``sigma_up`` to arrive at ``sigma_to`` (``eta = 1``: DDPM's amount of noise)."""
    if sigma_to <= 0 or eta <= 0:
        return sigma_to, 0.0
    up = min(sigma_to, eta * math.sqrt(max(sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2, 0.0)))
    return math.sqrt(max(sigma_to**2 - up**2, 0.0)), up


def _ancestral_target(s: float, t: float, eta: float, floor: float) -> tuple[float, float]:
    """Where the deterministic part of a step from ``s`` to ``t`` goes (``sigma_down``, never
    below the end of the integration) and the noise that then brings it up to ``t``."""
    if not eta:
        return t, 0.0
    down, _ = ancestral_step(s, t, eta)
    target = max(down, floor)
    return target, math.sqrt(max(t * t - target * target, 0.0))


class NoisePredictor:
    """The run's guided denoiser as a noise prediction ``eps = (x - x0) / sigma``."""

    def __init__(self, run: LoopRun) -> None:
        self.run = run

    def __call__(self, x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        denoised = self.run.denoise(x, sigma)
        return (x - denoised) / sigma, denoised


def dpm_solver_1(x: torch.Tensor, eps: torch.Tensor, s: float, t: float) -> torch.Tensor:
    """First-order DPM-Solver step from noise level ``s`` to ``t``."""
    return x - (s - t) * eps


def _intermediate(
    model: NoisePredictor, x: torch.Tensor, eps: torch.Tensor, s: float, t: float, r: float
) -> torch.Tensor:
    """The noise prediction at fraction ``r`` of the log step, reached by a first-order step."""
    s1 = s ** (1 - r) * t**r
    return model(x - (s - s1) * eps, s1)[0]


def dpm_solver_2(
    model: NoisePredictor, x: torch.Tensor, eps: torch.Tensor, s: float, t: float, r1: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Second-order step (one more evaluation, at fraction ``r1`` of the log step); returns the
    new sample and the noise prediction at the intermediate point (DPM-Solver-3 reuses it)."""
    eps1 = _intermediate(model, x, eps, s, t, r1)
    return x - (s - t) * eps - (s - t) / (2 * r1) * (eps1 - eps), eps1


def dpm_solver_3(
    model: NoisePredictor, x: torch.Tensor, eps: torch.Tensor, eps1: torch.Tensor, s: float, t: float
) -> torch.Tensor:
    """Third-order step given the prediction ``eps1`` at the 1/3 point (one more evaluation)."""
    r1, r2 = 1 / 3, 2 / 3
    h = math.log(s / t)
    s2 = s ** (1 - r2) * t**r2
    u2 = x - (s - s2) * eps - (r2 / r1) * ((s - s2) / (r2 * h) - s2) * (eps1 - eps)
    eps2, _ = model(u2, s2)
    return x - (s - t) * eps - ((s - t) / h - t) / r2 * (eps2 - eps)


def _step(model: NoisePredictor, order: int, x: torch.Tensor, eps: torch.Tensor, s: float, t: float) -> torch.Tensor:
    if order == 1:
        return dpm_solver_1(x, eps, s, t)
    if order == 2:
        return dpm_solver_2(model, x, eps, s, t)[0]
    return dpm_solver_3(model, x, eps, _intermediate(model, x, eps, s, t, 1 / 3), s, t)


class PIDStepSizeController:
    """Söderlind's PID step-size filter with an arctan limiter.

    The step factor is ``e0^b1 * e1^b2 * e2^b3`` of the last three inverse errors (of accepted
    steps, the current one first), with ``b1 = (p + i + d) / k``, ``b2 = -(p + 2d) / k``,
    ``b3 = d / k`` for method order ``k``; the limiter ``1 + atan(f - 1)`` keeps growth and
    shrinkage smooth. A step is accepted when its factor reaches ``accept_safety``; ``h`` is
    multiplied by the factor either way (a rejection retries with the smaller step).
    """

    def __init__(
        self,
        h: float,
        pcoeff: float,
        icoeff: float,
        dcoeff: float,
        order: float,
        accept_safety: float,
        eps: float = 1e-8,
    ) -> None:
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = eps
        self._inverse_errors: list[float] = []

    def propose(self, error: float) -> bool:
        inverse = 1.0 / (float(error) + self.eps)
        if not self._inverse_errors:
            self._inverse_errors = [inverse, inverse, inverse]
        self._inverse_errors[0] = inverse
        e0, e1, e2 = self._inverse_errors
        factor = 1.0 + math.atan(e0**self.b1 * e1**self.b2 * e2**self.b3 - 1.0)
        accept = factor >= self.accept_safety
        if accept:
            self._inverse_errors = [e0, e0, e1]
        self.h *= factor
        return accept


class DPMAdaptiveSampler:
    """ComfyUI's ``dpm_adaptive`` as a SAMPLER with its own loop (see the module docstring)."""

    name = "dpm_adaptive"

    def __init__(
        self,
        order: int = 3,
        rtol: float = 0.05,
        atol: float = 0.0078,
        h_init: float = 0.05,
        pcoeff: float = 0.0,
        icoeff: float = 1.0,
        dcoeff: float = 0.0,
        accept_safety: float = 0.81,
        eta: float = 0.0,
        s_noise: float = 1.0,
    ) -> None:
        if int(order) not in (2, 3):
            raise ValueError(f"dpm_adaptive: order must be 2 or 3, got {order}")
        if not h_init > 0:
            raise ValueError(f"dpm_adaptive: h_init must be above 0 (the first step size), got {h_init}")
        self.order = int(order)
        self.rtol, self.atol, self.h_init = float(rtol), float(atol), float(h_init)
        self.pcoeff, self.icoeff, self.dcoeff = float(pcoeff), float(icoeff), float(dcoeff)
        self.accept_safety, self.eta, self.s_noise = float(accept_safety), float(eta), float(s_noise)
        self.stats = StepStats(self.name)

    def begin_run(self, sigmas: Any) -> None:
        self.stats.reset()

    def report(self) -> dict[str, Any]:
        return self.stats.report()

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        stats = self.stats
        stats.reset()
        stats.ran = True
        calls_before = run.model_calls
        span = integration_range(run)
        model = NoisePredictor(run)
        lam, lam_end = -math.log(span.start), -math.log(span.end)
        controller = PIDStepSizeController(
            self.h_init, self.pcoeff, self.icoeff, self.dcoeff, 1.5 if self.eta else self.order, self.accept_safety
        )
        x = x_prev = run.x
        eps: torch.Tensor | None = None
        denoised = x
        while lam < lam_end - 1e-5:
            lam_next = min(lam_end, lam + controller.h)
            s, t = math.exp(-lam), math.exp(-lam_next)
            target, up = _ancestral_target(s, t, self.eta, span.end)
            if eps is None:  # kept while a rejected step is retried from the same point
                eps, denoised = model(x, s)
            if self.order == 2:
                low = dpm_solver_1(x, eps, s, target)
                high, _ = dpm_solver_2(model, x, eps, s, target, r1=0.5)
            else:
                low, eps1 = dpm_solver_2(model, x, eps, s, target, r1=1 / 3)
                high = dpm_solver_3(model, x, eps, eps1, s, target)
            scaled = (low - high) / tolerance_scale(self.atol, self.rtol, low, x_prev)
            error = float(torch.linalg.vector_norm(scaled)) / math.sqrt(low.numel())
            if not math.isfinite(error):
                raise RuntimeError(f"dpm_adaptive: non-finite values in the sample at sigma {s:.4g}")
            if controller.propose(error):
                x_prev = low
                x = high + run.noise_like(high) * (up * self.s_noise) if up > 0 else high
                lam, eps = lam_next, None
                stats.accepted += 1
                left = lam_end - lam if lam < lam_end - 1e-5 else 0.0
                x = run.step_done(
                    stats.accepted, x, denoised, total=estimated_total(stats.accepted, left, controller.h), sigma=t
                )
            else:
                stats.rejected += 1
        stats.evaluations = run.model_calls - calls_before
        return run.finish(x, denoised)


class DPMFastSampler:
    """ComfyUI's ``dpm_fast``: DPM-Solver-fast on uniform log-SNR steps (see the module docstring)."""

    name = "dpm_fast"

    def __init__(self, eta: float = 0.0, s_noise: float = 1.0) -> None:
        self.eta, self.s_noise = float(eta), float(s_noise)

    @staticmethod
    def orders(evaluations: int) -> list[int]:
        """The orders of the steps that spend ``evaluations`` model evaluations: third order
        except at the end, where the remainder (or 2 and 1 when it divides by 3) is spent."""
        steps = evaluations // 3 + 1
        if evaluations % 3 == 0:
            return [3] * (steps - 2) + [2, 1]
        return [3] * (steps - 1) + [evaluations % 3]

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        span = integration_range(run)
        model = NoisePredictor(run)
        orders = self.orders(run.steps)
        lam0, lam1 = -math.log(span.start), -math.log(span.end)
        lams = [lam0 + (lam1 - lam0) * i / len(orders) for i in range(len(orders) + 1)]
        x = denoised = run.x
        for i, order in enumerate(orders):
            s, t = math.exp(-lams[i]), math.exp(-lams[i + 1])
            target, up = _ancestral_target(s, t, self.eta, span.end)
            eps, denoised = model(x, s)
            if target < s:
                x = _step(model, order, x, eps, s, target)
            if up > 0:
                x = x + run.noise_like(x) * (up * self.s_noise)
            x = run.step_done(i + 1, x, denoised, total=len(orders), sigma=t)
        return run.finish(x, denoised)


def named_sampler(name: str) -> Any:
    """The SAMPLER for ``sampler_name`` ``dpm_fast`` or ``dpm_adaptive`` with ComfyUI's defaults."""
    if name == "dpm_fast":
        return DPMFastSampler()
    if name == "dpm_adaptive":
        return DPMAdaptiveSampler()
    raise ValueError(f"not a DPM-Solver sampler name: {name!r}")


def _float(name: str, default: float, tooltip: str) -> Any:
    return Float(name, default, min=0.0, max=100.0, step=0.01, round=False, tooltip=tooltip)


class SamplerDPMAdaptative(Node):
    """ComfyUI's node of the same (misspelt) name, so its workflows run unchanged."""

    category = "sampling/custom_sampling/samplers"
    description = (
        "DPM-Solver with adaptive step size (Lu et al., NeurIPS 2022, arXiv 2206.00927), ComfyUI's "
        "dpm_adaptive: the solver chooses its own noise levels to keep the estimated error within "
        "rtol/atol, so only the schedule's first and last nonzero sigma matter. Its report gives the "
        "model evaluations and the accepted and rejected steps."
    )
    inputs = (
        Int("order", 3, min=2, max=3, tooltip="3: DPM-Solver-23 (3 evaluations a step); 2: DPM-Solver-12 (2)."),
        _float("rtol", 0.05, "Relative tolerance of the error estimate."),
        _float("atol", 0.0078, "Absolute tolerance of the error estimate (in latent units)."),
        _float("h_init", 0.05, "First step size, in log-sigma."),
        _float("pcoeff", 0.0, "Proportional coefficient of the PID step-size controller."),
        _float("icoeff", 1.0, "Integral coefficient of the PID step-size controller."),
        _float("dcoeff", 0.0, "Derivative coefficient of the PID step-size controller."),
        _float("accept_safety", 0.81, "A step is accepted when the controller's factor reaches this."),
        _float("eta", 0.0, "Ancestral noise per step: 0 solves the ODE, 1 adds DDPM's amount."),
        _float("s_noise", 1.0, "Scale of the ancestral noise."),
    )
    outputs = (Output("SAMPLER"),)

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        h_init = inputs.get("h_init")
        if isinstance(h_init, (int, float)) and h_init <= 0:
            return "h_init must be above 0: it is the first step size (ComfyUI's default is 0.05)"
        return True

    def run(
        self,
        order: int,
        rtol: float,
        atol: float,
        h_init: float,
        pcoeff: float,
        icoeff: float,
        dcoeff: float,
        accept_safety: float,
        eta: float,
        s_noise: float,
    ) -> tuple:
        return (DPMAdaptiveSampler(order, rtol, atol, h_init, pcoeff, icoeff, dcoeff, accept_safety, eta, s_noise),)


NODES = [SamplerDPMAdaptative]
