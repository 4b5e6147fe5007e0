"""uni_pc, uni_pc_bh2 and deis as ComfyUI runs them, against the published algorithms written here.

UniPC (Zhao et al., NeurIPS 2023, arXiv 2302.04867): multistep predictor UniP and corrector
UniC with the data prediction, ``B(h) = h`` (bh1) or ``e^h - 1`` (bh2). ComfyUI's settings
(comfy/extra_samplers/uni_pc.py): order ``min(3, steps - 1)``, lower orders for the first steps
and the last two (``lower_order_final``), no corrector after the last step, and a schedule
ending in 0 ends at sigma 0.001 with the sample there as the result.

DEIS (Zhang & Chen, ICLR 2023, arXiv 2204.13902), ComfyUI's ``tab`` variant of order 3: linear
multistep on ``d = (x - D) / sigma`` with Lagrange interpolation in the time ``t`` of a VP SDE
(linear beta, fitted so that sigma(0.001) = 0.002 and sigma(1) = 80), each weight the integral
of ``dsigma/dt`` times a basis polynomial, summed over 10,000 points; Euler for the first step
and for a step to 0.

The references below are written from those descriptions in VP form (UniPC) and in ``t``
(DEIS), independently of Weft's VE-form code, and run on an exact denoiser for Gaussian data
(float64) and on the tiny UNet through KSampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from nodes.diffusion.deis import deis_weights
from nodes.diffusion.samplers import SAMPLERS, compute_sigmas
from nodes.diffusion.types import default_scheduler_config
from tests.support.tiny_unet import empty, ksample

CONFIG = default_scheduler_config("sd1", "epsilon")
VARIANCE = 0.5
Denoiser = Callable[[torch.Tensor, float], torch.Tensor]


def gaussian_denoiser(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The exact clean estimate for data N(0, VARIANCE)."""
    return x * (VARIANCE / (VARIANCE + sigma * sigma))


# --- UniPC, from the paper ------------------------------------------------------------------


def phi(k: int, h: float) -> float:
    """``phi_k(h)``: ``phi_1 = (e^h - 1) / h``, ``phi_(k+1) = (phi_k - 1/k!) / h``."""
    value = math.expm1(h) / h
    for i in range(1, k):
        value = (value - 1.0 / math.factorial(i)) / h
    return value


def marginals(s: float) -> tuple[float, float, float]:
    """``(alpha, sigma_vp, lambda)`` of a VE sigma: ``alpha^2 = 1 / (1 + s^2)``, ``sigma_vp^2 = 1 -
    alpha^2``, ``lambda = log(alpha / sigma_vp)``, evaluated in float32 as ComfyUI evaluates them
    (at its final sigma 0.001, ``1 + s^2`` rounds by 5 %, which the last step's weights feel)."""
    t = torch.tensor(s, dtype=torch.float32)
    log_alpha = 0.5 * torch.log(1 / (t * t + 1))
    sigma_vp = torch.sqrt(1 - torch.exp(2 * log_alpha))
    return float(torch.exp(log_alpha)), float(sigma_vp), float(log_alpha - torch.log(sigma_vp))


def reference_unipc(
    denoise: Denoiser, x_start: torch.Tensor, sigmas: list[float], variant: str, max_order: int = 3
) -> torch.Tensor:
    """UniPC in VP form (``x_vp = alpha x_ve``) with ComfyUI's settings; the VE sample at the end."""
    ts = list(sigmas)
    if ts[-1] == 0:
        ts[-1] = 1e-3
    n = len(ts) - 1
    top = max(1, min(max_order, n - 1))  # (ComfyUI's is 0 for one step; see the one-step test)

    def model(x_vp: torch.Tensor, s: float) -> torch.Tensor:
        return denoise(x_vp * math.sqrt(1 + s * s), s)  # the data prediction: the clean estimate

    x = x_start / math.sqrt(1 + ts[0] ** 2)
    estimates, lambdas = [model(x, ts[0])], [marginals(ts[0])[2]]
    for k in range(1, n + 1):
        p = min(k, top, n + 1 - k)
        (_, sigma_prev, lam_prev), (alpha, sigma_vp, lam) = marginals(ts[k - 1]), marginals(ts[k])
        hh = -(lam - lam_prev)  # data prediction: the step in -lambda
        b_h = hh if variant == "bh1" else math.expm1(hh)
        r = [(lambdas[-1 - i] - lambdas[-1]) / -hh for i in range(1, p)] + [1.0]
        diffs = [(estimates[-1 - i] - estimates[-1]) / r[i - 1] for i in range(1, p)]
        rows = np.array([[rk ** (i - 1) for rk in r] for i in range(1, p + 1)])
        g = np.array([hh * phi(i + 1, hh) * math.factorial(i) / b_h for i in range(1, p + 1)])
        base = x * (sigma_vp / sigma_prev) - estimates[-1] * (alpha * math.expm1(hh))
        rho_p = [] if p == 1 else [0.5] if p == 2 else list(np.linalg.solve(rows[:-1, :-1], g[:-1]))
        x_next = base - alpha * b_h * sum((d * w for d, w in zip(diffs, rho_p, strict=True)), torch.zeros_like(x))
        if k < n:  # UniC with the new estimate (no corrector after the last step)
            new = model(x_next, ts[k])
            rho_c = [0.5] if p == 1 else list(np.linalg.solve(rows, g))
            correction = sum((d * w for d, w in zip(diffs, rho_c[:-1], strict=True)), torch.zeros_like(x))
            x_next = base - alpha * b_h * (correction + rho_c[-1] * (new - estimates[-1]))
            estimates.append(new)
            lambdas.append(lam)
        x = x_next
    return x / marginals(ts[-1])[0]


def drive(name: str, denoise: Denoiser, x_start: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """Weft's stepper for ``name`` driven as the sampling loop drives it (VE space, no mask)."""
    stepper = SAMPLERS[name].stepper(CONFIG, torch.tensor(sigmas, dtype=torch.float32), seed=0)
    x = x_start.clone()
    for j in range(stepper.calls):
        sigma = stepper.call_sigmas[j]
        eps = (x - denoise(x, sigma)) / sigma  # the model's noise prediction
        x = stepper.step(eps, j, x)
    return stepper.to_latent(x)


def karras(steps: int) -> list[float]:
    return [float(s) for s in compute_sigmas(CONFIG, "karras", steps)]


def start(sigma: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn((2, 4, 8, 8), generator=g, dtype=torch.float64) * math.sqrt(VARIANCE + sigma * sigma)


@pytest.mark.parametrize("name,variant", [("uni_pc", "bh1"), ("uni_pc_bh2", "bh2")])
@pytest.mark.parametrize("steps", [2, 3, 4, 9])
def test_unipc_is_the_published_algorithm_with_comfyuis_settings(name, variant, steps):
    sigmas = karras(steps)
    x0 = start(sigmas[0])
    ours = drive(name, gaussian_denoiser, x0, sigmas)
    reference = reference_unipc(gaussian_denoiser, x0, sigmas, variant)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6 * float(reference.abs().max()))


def test_unipc_settings_are_pinned_at_the_tolerance_used():
    """The other variant, order 2 (diffusers' default) or the VP marginals in float64 move the
    result by far more than the tolerance above."""
    sigmas = karras(9)
    x0 = start(sigmas[0])
    ours = drive("uni_pc", gaussian_denoiser, x0, sigmas)
    tolerance = 1e-6 * float(ours.abs().max())
    for other in (
        reference_unipc(gaussian_denoiser, x0, sigmas, "bh2"),
        reference_unipc(gaussian_denoiser, x0, sigmas, "bh1", max_order=2),
    ):
        assert float((other - ours).abs().max()) > 20 * tolerance
    # the result is the sample at sigma 0.001, noise included: ending there in float64 instead
    ratio_64 = 1e-3 / sigmas[-2]
    _, s_end, _ = marginals(1e-3)
    _, s_prev, _ = marginals(sigmas[-2])
    assert abs(s_end / math.sqrt(1 - s_end**2) / (s_prev / math.sqrt(1 - s_prev**2)) - ratio_64) > 1e-2 * ratio_64


def test_unipc_one_step_takes_a_first_order_step():
    """With one step ComfyUI's order is 0 and it returns its starting sample, scaled; Weft takes
    one first-order step (docs/compatibility.md), which lands on the clean estimate (+ 0.001 eps)."""
    sigmas = [float(compute_sigmas(CONFIG, "karras", 1)[0]), 0.0]
    x0 = start(sigmas[0])
    ours = drive("uni_pc", gaussian_denoiser, x0, sigmas)
    reference = reference_unipc(gaussian_denoiser, x0, sigmas, "bh1", max_order=1)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6 * float(reference.abs().max()))
    clean = gaussian_denoiser(x0, sigmas[0])
    assert float((ours - clean).abs().max()) < 1e-3 * float(x0.abs().max()) / sigmas[0] * 2
    assert float((ours - x0 / math.sqrt(1 + sigmas[0] ** 2)).abs().max()) > 0.1


# --- DEIS, from the paper and ComfyUI's quadrature ------------------------------------------


def vp_time(sigma: float) -> float:
    """``t`` with ``sigma(t)^2 = exp(beta_d t^2 / 2 + beta_min t) - 1``, the linear-beta VP SDE
    through ``sigma(0.001) = 0.002`` and ``sigma(1) = 80``."""
    lo, hi = math.log(1 + 0.002**2), math.log(1 + 80.0**2)
    beta_d = 2 * (lo / 1e-3 - hi) / (1e-3 - 1)
    beta_min = hi - beta_d / 2
    return (math.sqrt(beta_min**2 + 2 * beta_d * math.log(1 + sigma * sigma)) - beta_min) / beta_d


def dsigma_dt(t: np.ndarray) -> np.ndarray:
    """``dsigma/dt`` along the fitted SDE, by the chain rule on ``sigma = sqrt(exp(log_var) - 1)``."""
    lo, hi = math.log(1 + 0.002**2), math.log(1 + 80.0**2)
    beta_d = 2 * (lo / 1e-3 - hi) / (1e-3 - 1)
    beta_min = hi - beta_d / 2
    log_var = beta_d * t * t / 2 + beta_min * t  # log(1 + sigma^2)
    sigma = np.sqrt(np.expm1(log_var))
    return np.exp(log_var) * (beta_d * t + beta_min) / (2 * sigma)


def reference_deis(denoise: Denoiser, x_start: torch.Tensor, sigmas: list[float], points: int) -> torch.Tensor:
    """tAB-DEIS of order 3; each weight ``sum(dsigma/dt * L_j) * (t' - t) / points`` over ``points``
    evenly spaced times of the step, both ends included (ComfyUI's sum)."""
    times = [vp_time(s) for s in sigmas]
    x, history = x_start, []
    for i in range(len(sigmas) - 1):
        d = (x - denoise(x, sigmas[i])) / sigmas[i]
        p = min(i + 1, 3)
        if p == 1 or sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigmas[i])
        else:
            taus = np.linspace(times[i], times[i + 1], points)
            nodes = [times[i - k] for k in range(p)]
            derivatives = [d, *reversed(history[-(p - 1) :])]
            for j in range(p):
                basis = np.prod([(taus - nodes[m]) / (nodes[j] - nodes[m]) for m in range(p) if m != j], axis=0)
                weight = float(np.sum(dsigma_dt(taus) * basis) * (times[i + 1] - times[i]) / points)
                x = x + derivatives[j] * weight
        history.append(d)
    return x


@pytest.mark.parametrize("schedule", ["karras", "normal", "linear_quadratic"])
def test_deis_is_comfyuis_tab_deis(schedule):
    sigmas = [float(s) for s in compute_sigmas(CONFIG, schedule, 8)]
    x0 = start(sigmas[0])
    ours = drive("deis", gaussian_denoiser, x0, sigmas)
    reference = reference_deis(gaussian_denoiser, x0, sigmas, 10_000)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-9 * float(reference.abs().max()))


def test_deis_solves_the_ode_better_than_euler():
    sigmas = karras(8)
    x0 = start(sigmas[0])
    exact = x0 * math.sqrt(VARIANCE / (VARIANCE + sigmas[0] ** 2))  # the ODE's solution at 0
    euler = x0.clone()
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        euler = euler + (euler - gaussian_denoiser(euler, s)) / s * (s_next - s)
    ours = drive("deis", gaussian_denoiser, x0, sigmas)
    assert float((ours - exact).norm()) < 0.5 * float((euler - exact).norm())


def test_deis_weights_integrate_dsigma_against_the_lagrange_basis():
    """Each weight is within ComfyUI's O(1/N) quadrature bias (N = 10,000) of the integral, done
    here with 64-point Gauss-Legendre; together they sum to the step in sigma."""
    sigmas = [float(s) for s in compute_sigmas(CONFIG, "karras", 6)]
    times = [vp_time(s) for s in sigmas]
    nodes_gl, weights_gl = np.polynomial.legendre.leggauss(64)
    table = deis_weights(sigmas, 3)
    assert table[0] == [] and table[-1] == []  # Euler: first step, step to 0
    for i, row in enumerate(table[:-1]):
        if not row:
            continue
        a, b = times[i], times[i + 1]
        taus = (b - a) / 2 * nodes_gl + (a + b) / 2
        nodes = [times[i - k] for k in range(len(row))]
        for j, weight in enumerate(row):
            basis = np.prod([(taus - nodes[m]) / (nodes[j] - nodes[m]) for m in range(len(row)) if m != j], axis=0)
            exact = float((b - a) / 2 * np.dot(weights_gl, dsigma_dt(taus) * basis))
            assert weight == pytest.approx(exact, rel=1e-3, abs=1e-4 * abs(sigmas[i + 1] - sigmas[i]))
        assert sum(row) == pytest.approx(sigmas[i + 1] - sigmas[i], rel=1e-3)


# --- through KSampler on the tiny UNet ------------------------------------------------------


def unet_denoiser(model, positive, negative, sigmas: list[float]) -> Denoiser:
    from nodes.diffusion.guidance import Guider
    from nodes.diffusion.loops import LoopRun

    guider = Guider(model, 5.0)
    guider.set_conds(positive, negative)
    zeros = torch.zeros((1, 4, 8, 8))
    run = LoopRun(guider, torch.tensor(sigmas), zeros, zeros, None, 1, None, None)
    return lambda x, sigma: run.denoise(x.float(), sigma).double()


@pytest.mark.parametrize("name", ["uni_pc", "uni_pc_bh2", "deis"])
def test_ksampler_runs_the_reference_on_the_tiny_unet(tiny_model, tiny_positive, tiny_negative, name):
    """KSampler's schedule (uni_pc: computed for one step more, its last nonzero sigma dropped,
    ComfyUI's rule), its starting noise (``noise * sqrt(1 + sigma_max^2)`` from the top) and the
    run give the reference's latent for the same seed."""
    steps = 6
    longer = [float(s) for s in compute_sigmas(CONFIG, "karras", steps + 1)]
    sigmas = longer[:-2] + longer[-1:] if name.startswith("uni_pc") else karras(steps)
    with torch.inference_mode():
        denoise = unet_denoiser(tiny_model, tiny_positive, tiny_negative, sigmas)
        noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(7))  # the seed's noise
        x0 = noise.double() * math.sqrt(1 + sigmas[0] ** 2)
        if name == "deis":
            reference = reference_deis(denoise, x0, sigmas, 10_000)
        else:
            reference = reference_unipc(denoise, x0, sigmas, "bh2" if name.endswith("bh2") else "bh1")
    ours = ksample(tiny_model, tiny_positive, tiny_negative, empty(), seed=7, steps=steps, sampler=name)["samples"]
    expected = (reference / 0.18215).float()
    torch.testing.assert_close(ours, expected, rtol=0, atol=2e-5 * float(expected.abs().max()))
