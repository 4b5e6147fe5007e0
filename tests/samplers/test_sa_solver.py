"""ComfyUI's SA-Solver (nodes/samplers/sa_solver.py) against a reference written here from the
paper's predictor-corrector (Xue et al., "SA-Solver: Stochastic Adams Solver for Fast Sampling of
Diffusion Models", NeurIPS 2023, arXiv 2309.05019) with the rules ComfyUI 0.8.0 adds (SDE
interval, orders lowered towards the end, PECE), the weights integrated by Gauss-Legendre
quadrature rather than in closed form, and the noise of ComfyUI's ``default_noise_sampler``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.guidance import Guider
from nodes.diffusion.samplers import (
    COMFYUI_SAMPLER_ORDER,
    LOOP_SAMPLERS,
    SAMPLER_NAMES,
    UNSUPPORTED_SAMPLERS,
    compute_sigmas,
)
from nodes.diffusion.types import default_scheduler_config
from nodes.samplers.sa_solver import NAMES, SamplerSASolver, SASolverSampler, named_sampler
from tests.support.tiny_unet import empty, ksample

from .gaussian import GaussianRun, relative_error
from .prompts import custom_prompt, first_latent, run_prompt
from .test_dpmpp_sde import close, loop_run
from .test_sde_extras import gaussian


@pytest.fixture(scope="module")
def guider(model, positive, negative):
    g = Guider(model, 5.0)
    g.set_conds(positive, negative)
    model.prepare()
    return g


def sd1_percent_to_sigma(percent: float) -> float:
    """ComfyUI's ``percent_to_sigma`` for SD1's scaled-linear schedule: the training sigma at
    timestep ``(1 - percent) * 999``, interpolated in log sigma."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    alphas = np.cumprod(1 - betas)
    log_sigmas = np.log(np.sqrt((1 - alphas) / alphas))
    t = (1 - percent) * 999
    low = int(math.floor(t))
    return float(np.exp(log_sigmas[low] + (t - low) * (log_sigmas[min(low + 1, 999)] - log_sigmas[low])))


def quadrature_weights(nodes: list[float], lam_s: float, lam_t: float, tau: float) -> list[float]:
    """``b_j = (1 + tau^2) int_s^t e^((1 + tau^2)(l - lambda_t)) L_j(l) dl`` (the paper's eq. 15 and
    18 in the data prediction, signal scale 1) by 24-point Gauss-Legendre quadrature."""
    rate = 1 + tau * tau
    points, weights = np.polynomial.legendre.leggauss(24)
    half = (lam_t - lam_s) / 2
    ls = lam_s + half * (points + 1)
    out = []
    for j, node in enumerate(nodes):
        basis = np.ones_like(ls)
        for m, other in enumerate(nodes):
            if m != j:
                basis = basis * (ls - other) / (node - other)
        out.append(float(rate * half * np.sum(weights * np.exp(rate * (ls - lam_t)) * basis)))
    return out


def simple_weights(nodes: list[float], lam_s: float, lam_t: float, tau: float, corrector: bool) -> list[float]:
    """The paper's simplified order-2 weights (appendix D), older estimate first."""
    rate, h = 1 + tau * tau, lam_t - lam_s
    whole = 1 - math.exp(-rate * h)
    if corrector:
        return [whole - rate * h / 2, rate * h / 2]
    older = rate * h * h / 2 / (nodes[0] - lam_s)
    return [older, whole - older]


def reference_sa_solver(
    run,
    seed: int,
    eta: float = 1.0,
    interval: tuple[float, float] = (sd1_percent_to_sigma(0.2), sd1_percent_to_sigma(0.8)),
    s_noise: float = 1.0,
    orders: tuple[int, int] = (3, 4),
    pece: bool = False,
    simple: bool = False,
) -> torch.Tensor:
    """Predict ``x_t = (t/s) e^(-tau^2 h) x + sum b_j D_j + t sqrt(1 - e^(-2 tau^2 h)) s_noise z``;
    correct the last step with the new estimate and the same ``z``; tau = eta inside the interval."""
    z = gaussian(seed)
    sig = [float(v) for v in run.sigmas]
    lam = [-math.log(v) if v > 0 else math.inf for v in sig]
    n = len(sig) - 1

    def step(x, ds, j, k, tau, corrector):
        nodes = lam[k - len(ds) + 1 : k + 1]
        rule = simple_weights if simple and len(ds) == 2 else None
        bs = (
            rule(nodes, lam[j], lam[j + 1], tau, corrector)
            if rule
            else quadrature_weights(nodes, lam[j], lam[j + 1], tau)
        )
        x = x * (sig[j + 1] / sig[j] * math.exp(-tau * tau * (lam[j + 1] - lam[j])))
        return x + sum(b * d for b, d in zip(bs, ds, strict=True))

    x = pred = run.x
    ds, tau, noise = [], 0.0, None
    for i in range(n):
        d = run.denoise(pred, sig[i])
        ds.append(d)
        p, c = min(orders[0], len(ds)), min(orders[1], len(ds))
        if i == 0 or (sig[i + 1] == 0 and not pece):
            c = 0
        if sig[-1] == 0:
            p, c = min(p, n - 1 - i), min(c, n - i)
        if c == 0:
            x = pred
        else:
            x = step(x, ds[-c:], i - 1, i, tau, True) + (noise if noise is not None else 0)
            if pece:
                d = ds[-1] = run.denoise(x, sig[i])
        if sig[i + 1] == 0:
            pred = d
            continue
        tau = eta if interval[0] >= sig[i + 1] >= interval[1] else 0.0
        pred = step(x, ds[-p:], i, i, tau, False)
        noise = None
        if tau > 0 and s_noise > 0:
            h = lam[i + 1] - lam[i]
            noise = z(x) * (sig[i + 1] * math.sqrt(1 - math.exp(-2 * tau * tau * h)) * s_noise)
            pred = pred + noise
    return pred


def test_the_quadrature_reference_integrates_the_lagrange_basis():
    """Constant and polynomial data are integrated exactly: the weights sum to 1 - e^(-k h) and
    weight the nodes' lambdas to the first moment."""
    nodes, s, t = [-2.2, -1.4, -0.9], -0.9, -0.1
    for tau in (0.0, 1.0):
        k, h = 1 + tau * tau, t - s
        weights = quadrature_weights(nodes, s, t, tau)
        assert sum(weights) == pytest.approx(1 - math.exp(-k * h), rel=1e-12)
        first = sum(w * (node - t) for w, node in zip(weights, nodes, strict=True))
        assert first == pytest.approx(h * math.exp(-k * h) - (1 - math.exp(-k * h)) / k, rel=1e-10)


CASES = [
    ("sa_solver", named_sampler("sa_solver"), {}),
    ("sa_solver_pece", named_sampler("sa_solver_pece"), {"pece": True}),
    (
        "simple_order_2 p2 c2",
        SASolverSampler(predictor_order=2, corrector_order=2, simple_order_2=True, sde_sigmas=(5.0, 1.0)),
        {"orders": (2, 2), "simple": True, "interval": (5.0, 1.0)},
    ),
    (
        "eta .6 s_noise .7 pece simple",
        SASolverSampler(0.6, 0.7, use_pece=True, simple_order_2=True, sde_sigmas=(99.0, 0.0)),
        {"eta": 0.6, "s_noise": 0.7, "pece": True, "simple": True, "interval": (99.0, 0.0)},
    ),
    ("p6 c6", SASolverSampler(predictor_order=6, corrector_order=6), {"orders": (6, 6)}),
    ("p1 c0 eta 0", SASolverSampler(0.0, predictor_order=1, corrector_order=0), {"eta": 0.0, "orders": (1, 0)}),
]


@pytest.mark.parametrize("label, sampler, options", CASES, ids=[c[0] for c in CASES])
def test_sa_solver_equals_the_papers_predictor_corrector(guider, label, sampler, options):
    """On the tiny UNet, to 1e-5 of the sample's scale, for a schedule to 0 and one stopping above it."""
    sigmas = compute_sigmas(guider.model.scheduler_config, "karras", 8)
    with torch.inference_mode():
        for schedule, seed in ((sigmas, 11), (sigmas[:-3], 2**40 + 3)):
            ours = sampler.sample_loop(loop_run(guider, schedule, seed))[0]
            expected = reference_sa_solver(loop_run(guider, schedule, seed), seed, **options)
            assert close(ours, expected) < 1e-5, f"{label} {len(schedule) - 1} steps"


def test_the_reference_tells_the_variants_apart(guider):
    sigmas = compute_sigmas(guider.model.scheduler_config, "karras", 6)
    with torch.inference_mode():
        plain = reference_sa_solver(loop_run(guider, sigmas, 5), 5)
        others = [
            named_sampler("sa_solver_pece").sample_loop(loop_run(guider, sigmas, 5))[0],
            named_sampler("sa_solver").sample_loop(loop_run(guider, sigmas, 6))[0],
            SASolverSampler(0.0).sample_loop(loop_run(guider, sigmas, 5))[0],
            SASolverSampler(simple_order_2=True).sample_loop(loop_run(guider, sigmas, 5))[0],
            SASolverSampler(corrector_order=0).sample_loop(loop_run(guider, sigmas, 5))[0],
        ]
    for other in others:
        assert close(other, plain) > 1e-4


def test_the_ode_solver_converges_with_a_high_order():
    """eta 0 on Gaussian data (exact denoiser, exact ODE solution): doubling the steps divides the
    error of the order 3/4 predictor-corrector by over 10 (2^4 in the limit), of Euler's order by 2."""
    errors = {}
    for label, sampler in (("pc", SASolverSampler(0.0)), ("euler", SASolverSampler(0.0, 1.0, 1, 0))):
        for steps in (32, 64):
            run = GaussianRun(list(np.geomspace(10.0, 0.1, steps + 1)))
            run.mask = None
            x = sampler.sample_loop(run)[0]
            errors[label, steps] = relative_error(x, run.exact(0.1))
    assert errors["pc", 32] / errors["pc", 64] > 10
    assert 1.8 < errors["euler", 32] / errors["euler", 64] < 2.2
    assert errors["pc", 64] < 1e-5


def test_steps_outside_the_sde_interval_add_no_noise(guider):
    """A schedule below the interval's end runs the ODE solver: the seed of the step noise no
    longer matters, and it equals eta 0."""
    low = compute_sigmas(guider.model.scheduler_config, "karras", 8)[5:]
    assert float(low[0]) < sd1_percent_to_sigma(0.8)
    with torch.inference_mode():
        one = named_sampler("sa_solver").sample_loop(loop_run(guider, low, 1))[0]
        run = loop_run(guider, low, 1)
        run.generator = torch.Generator().manual_seed(99)
        other = named_sampler("sa_solver").sample_loop(run)[0]
        ode = SASolverSampler(0.0).sample_loop(loop_run(guider, low, 1))[0]
    assert torch.equal(one, other) and torch.equal(one, ode)


@pytest.mark.parametrize(
    "sampler, calls", [(named_sampler("sa_solver"), 5), (named_sampler("sa_solver_pece"), 9)], ids=repr
)
def test_model_calls_and_progress(sampler, calls):
    run = GaussianRun(compute_sigmas(default_scheduler_config("sd1", "epsilon"), "karras", 5).tolist())
    run.mask = None
    run.model.scheduler_config = default_scheduler_config("sd1", "epsilon")
    sampler.sample_loop(run)
    assert run.model_calls == calls
    assert run.progress == [(i, 5) for i in range(1, 6)]


def test_refuses_bad_settings_and_repeated_sigmas(guider):
    with pytest.raises(ValueError, match="predictor_order"):
        SASolverSampler(predictor_order=0)
    with pytest.raises(ValueError, match="corrector_order"):
        SASolverSampler(corrector_order=7)
    with pytest.raises(ValueError, match="eta"):
        SASolverSampler(eta=-1.0)
    with pytest.raises(ValueError, match="distinct sigmas"):
        named_sampler("sa_solver").sample_loop(loop_run(guider, torch.tensor([14.6, 3.0, 3.0, 0.0]), 1))


# -- the names and the node ----------------------------------------------------------------------


def test_the_names_are_offered_in_comfyuis_place():
    assert set(NAMES) <= set(LOOP_SAMPLERS) and not set(NAMES) & set(UNSUPPORTED_SAMPLERS)
    comfy = [n for n in SAMPLER_NAMES if n in COMFYUI_SAMPLER_ORDER]
    assert comfy == list(COMFYUI_SAMPLER_ORDER)  # every ComfyUI name, in ComfyUI's order
    assert comfy.index("sa_solver") == comfy.index("seeds_3") + 1
    assert comfy.index("sa_solver_pece") == comfy.index("ddim") - 1
    assert isinstance(sn.KSamplerSelect().run("sa_solver_pece")[0], SASolverSampler)
    assert named_sampler("sa_solver_pece").use_pece and not named_sampler("sa_solver").use_pece


def test_node_schema():
    from nodes.registry import builtin_registry
    from server.object_info import describe

    info = describe(builtin_registry()["SamplerSASolver"].schema)
    required = info["input"]["required"]
    assert info["input_order"]["required"] == [
        "model",
        "eta",
        "sde_start_percent",
        "sde_end_percent",
        "s_noise",
        "predictor_order",
        "corrector_order",
        "use_pece",
        "simple_order_2",
    ]
    assert required["model"][0] == "MODEL" and required["use_pece"][0] == "BOOLEAN"
    assert [required[k][1]["default"] for k in ("eta", "sde_start_percent", "sde_end_percent", "s_noise")] == [
        1.0,
        0.2,
        0.8,
        1.0,
    ]
    assert (required["eta"][1]["max"], required["sde_start_percent"][1]["step"]) == (10.0, 0.001)
    assert [
        (required[k][1]["default"], required[k][1]["min"], required[k][1]["max"])
        for k in ("predictor_order", "corrector_order")
    ] == [(3, 1, 6), (4, 0, 6)]
    assert info["output"] == ["SAMPLER"] and info["category"] == "sampling/custom_sampling/samplers"


def _custom(model, positive, negative, sampler, seed: int, steps: int) -> torch.Tensor:
    sigmas = sn.BasicScheduler().run(model, "karras", steps, 1.0)[0]
    out = sn.SamplerCustom().run(model, True, seed, 5.0, positive, negative, sampler, sigmas, empty(1))
    return first_latent(out)["samples"]


def test_the_node_with_defaults_is_ksamplers_sa_solver(model, positive, negative):
    for pece, name in ((False, "sa_solver"), (True, "sa_solver_pece")):
        sampler = SamplerSASolver().run(model, 1.0, 0.2, 0.8, 1.0, 3, 4, pece, False)[0]
        assert sampler.sde_sigmas == pytest.approx((sd1_percent_to_sigma(0.2), sd1_percent_to_sigma(0.8)), rel=1e-5)
        custom = _custom(model, positive, negative, sampler, seed=9, steps=4)
        ksampler = ksample(model, positive, negative, empty(1), seed=9, steps=4, sampler=name)["samples"]
        assert torch.equal(custom, ksampler), name


def test_the_nodes_settings_change_the_picture(model, positive, negative):
    """Each setting matters (6 steps: with fewer, the orders fall below 3 before they are reached)."""
    base = _custom(
        model, positive, negative, SamplerSASolver().run(model, 1.0, 0.2, 0.8, 1.0, 3, 4, False, False)[0], 9, 6
    )
    for settings in (
        (0.5, 0.2, 0.8, 1.0, 3, 4, False, False),
        (1.0, 0.0, 1.0, 1.0, 3, 4, False, False),
        (1.0, 0.2, 0.8, 0.5, 3, 4, False, False),
        (1.0, 0.2, 0.8, 1.0, 2, 4, False, False),
        (1.0, 0.2, 0.8, 1.0, 3, 1, False, False),
        (1.0, 0.2, 0.8, 1.0, 3, 4, False, True),
    ):
        changed = _custom(model, positive, negative, SamplerSASolver().run(model, *settings)[0], 9, 6)
        assert close(changed, base) > 1e-4, settings


def test_the_node_runs_in_a_prompt(executor, model, positive, negative):
    node = {
        "class_type": "SamplerSASolver",
        "inputs": {
            "model": ["1", 0],
            "eta": 1.0,
            "sde_start_percent": 0.2,
            "sde_end_percent": 0.8,
            "s_noise": 1.0,
            "predictor_order": 3,
            "corrector_order": 4,
            "use_pece": True,
            "simple_order_2": False,
        },
    }
    mean = run_prompt(executor, custom_prompt(node, steps=4, seed=5)).outputs["4"]["mean"][0]
    direct = ksample(model, positive, negative, empty(1), seed=5, steps=4, sampler="sa_solver_pece")["samples"]
    assert mean == pytest.approx(float(direct.mean()), rel=1e-5)


def test_inpainting_mask_keeps_the_unmasked_latent(model, positive, negative):
    source = {"samples": torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))}
    mask = torch.zeros((1, 8, 8))
    mask[:, :, 4:] = 1.0
    for name in NAMES:
        out = ksample(model, positive, negative, {**source, "noise_mask": mask}, seed=3, steps=4, sampler=name)
        kept, painted = out["samples"][..., :4], out["samples"][..., 4:]
        assert torch.allclose(kept, source["samples"][..., :4], atol=1e-5)
        assert close(painted, source["samples"][..., 4:]) > 1e-2
