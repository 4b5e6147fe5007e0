"""ComfyUI's ER-SDE and SEEDS samplers (nodes/samplers/sde_extras.py) against references written
here from the papers' update rules (Cui et al., arXiv 2309.06169; Gonzalez et al., arXiv
2305.14267), with the noise ComfyUI's ``default_noise_sampler`` draws: a CPU generator seeded
with the seed plus one, one draw per noise term."""

from __future__ import annotations

import math

import pytest
import torch

from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.guidance import Guider
from nodes.diffusion.samplers import LOOP_SAMPLERS, SAMPLER_NAMES, UNSUPPORTED_SAMPLERS, compute_sigmas
from nodes.samplers.sde_extras import NAMES, ERSDESampler, SamplerER_SDE, SamplerSEEDS2, SEEDSSampler, named_sampler
from tests.support.tiny_unet import empty, ksample

from .prompts import custom_prompt, first_latent, run_prompt
from .test_dpmpp_sde import close, loop_run


@pytest.fixture(scope="module")
def guider(model, positive, negative):
    g = Guider(model, 5.0)
    g.set_conds(positive, negative)
    model.prepare()
    return g


def gaussian(seed: int):
    g = torch.Generator().manual_seed(seed + 1)
    return lambda like: torch.randn(like.shape, generator=g)


def reference_er_sde(run, seed: int, s_noise: float = 1.0, max_stage: int = 3, phi=None) -> torch.Tensor:
    """VP ER-SDE-Solver-3 with noise scale phi(l) = l (e^(l^0.3) + 10), l = sigma (or the ``phi``
    given); the integrals of 1/phi and (l - s)/phi by a 200-point left Riemann sum, as the
    authors' code."""
    z = gaussian(seed)
    phi = phi or (lambda v: v * (math.exp(v**0.3) + 10))
    sig = [float(v) for v in run.sigmas]
    x, ds, firsts = run.x, [], []
    for i in range(run.steps):
        s, t = sig[i], sig[i + 1]
        d = run.denoise(x, s)
        if t == 0:
            x = d
        else:
            ratio = phi(t) / phi(s)
            x = ratio * x + (1 - ratio) * d
            grid = [t + (s - t) * k / 200 for k in range(200)]
            if max_stage >= 2 and i >= 1:
                first = (d - ds[-1]) / (s - sig[i - 1])
                x = x + ((t - s) + phi(t) * sum((s - t) / 200 / phi(v) for v in grid)) * first
                if max_stage >= 3 and i >= 2:
                    second = (first - firsts[-1]) / ((s - sig[i - 2]) / 2)
                    integral = sum((s - t) / 200 * (v - s) / phi(v) for v in grid)
                    x = x + ((t - s) ** 2 / 2 + phi(t) * integral) * second
                firsts.append(first)
            if s_noise > 0:
                x = x + z(x) * s_noise * math.sqrt(max(t * t - ratio * ratio * s * s, 0.0))
        ds.append(d)
    return x


def _e1(z: float) -> float:
    return math.expm1(-z)


def _e2(z: float) -> float:
    return (math.expm1(-z) + z) / -z


def reference_seeds(run, seed: int, cs: tuple[float, ...], phi_1: bool, eta: float = 1.0) -> torch.Tensor:
    """SEEDS-2/-3 in the data prediction, lambda = -log sigma: exponential stages with phi_1/phi_2
    weights; each stage's noise continues the previous one's (one Brownian path per step)."""
    z = gaussian(seed)
    sig = [float(v) for v in run.sigmas]
    x = run.x
    for i in range(run.steps):
        s, t = sig[i], sig[i + 1]
        d = run.denoise(x, s)
        if t == 0:
            x = d
            continue
        h = math.log(s / t)
        g = (1 + eta) * h
        stages, noise, prev_c, estimates = [*cs, 1.0], None, 0.0, [d]
        for k, c in enumerate(stages):
            u = s * math.exp(-c * h)
            if k == 0:
                combo = _e1(c * g) * d
            elif k == len(stages) - 1 and len(cs) == 1 and phi_1:
                combo = _e1(g) * ((1 - 1 / (2 * cs[0])) * d + 1 / (2 * cs[0]) * estimates[-1])
            else:
                w = (c / cs[0] if k == 1 and len(cs) == 2 else 1 / cs[-1]) * _e2(c * g)
                combo = (_e1(c * g) - w) * d + w * estimates[-1]
            y = (u / s) * math.exp(-c * h * eta) * x - combo
            if eta > 0:
                step = (c - prev_c) * h * eta
                fresh = z(x) * math.sqrt(1 - math.exp(-2 * step))
                noise = fresh if noise is None else noise * math.exp(-step) + fresh
                y = y + noise * u
            prev_c = c
            if k < len(stages) - 1:
                estimates.append(run.denoise(y, torch.tensor(u, dtype=torch.float32)))
            else:
                x = y
    return x


CASES = [
    ("er_sde", named_sampler("er_sde"), lambda run, seed: reference_er_sde(run, seed)),
    ("er_sde 0.5 stage 2", ERSDESampler(0.5, 2), lambda run, seed: reference_er_sde(run, seed, 0.5, 2)),
    (
        "reverse-time SDE eta .5 s_noise .8",
        ERSDESampler(0.8, 3, 0.5),
        lambda run, seed: reference_er_sde(run, seed, 0.8, 3, lambda v: v**1.5),
    ),
    ("ODE stage 2", ERSDESampler(0.0, 2, 0.0), lambda run, seed: reference_er_sde(run, seed, 0.0, 2, lambda v: v)),
    ("exp_heun_2_x0_sde", named_sampler("exp_heun_2_x0_sde"), lambda r, s: reference_seeds(r, s, (1.0,), False)),
    ("seeds_2", named_sampler("seeds_2"), lambda run, seed: reference_seeds(run, seed, (0.5,), True)),
    ("seeds_2 phi_2 r .3", SEEDSSampler((0.3,), "phi_2"), lambda run, seed: reference_seeds(run, seed, (0.3,), False)),
    ("seeds_3", named_sampler("seeds_3"), lambda run, seed: reference_seeds(run, seed, (1 / 3, 2 / 3), False)),
    (
        "seeds_3 eta 0",
        SEEDSSampler((1 / 3, 2 / 3), "phi_2", 0.0),
        lambda r, s: reference_seeds(r, s, (1 / 3, 2 / 3), False, 0.0),
    ),
]


@pytest.mark.parametrize("label, sampler, reference", CASES, ids=[c[0] for c in CASES])
def test_samplers_equal_the_papers_update_rules(guider, label, sampler, reference):
    sigmas = compute_sigmas(guider.model.scheduler_config, "karras", 5)
    with torch.inference_mode():
        for schedule, seed in ((sigmas, 11), (sigmas[:-2], 2**40 + 3)):
            ours = sampler.sample_loop(loop_run(guider, schedule, seed))[0]
            expected = reference(loop_run(guider, schedule, seed), seed)
            assert close(ours, expected) < 1e-5, f"{label} {len(schedule) - 1} steps"


def test_the_names_are_offered_and_no_longer_refused():
    assert set(NAMES) <= set(LOOP_SAMPLERS) and set(NAMES) <= set(SAMPLER_NAMES)
    assert not set(NAMES) & set(UNSUPPORTED_SAMPLERS)
    assert not UNSUPPORTED_SAMPLERS  # sa_solver and sa_solver_pece were the last (nodes/samplers/sa_solver.py)


@pytest.mark.parametrize("name", NAMES)
def test_ksampler_same_seed_same_picture(model, positive, negative, name):
    a = ksample(model, positive, negative, empty(1), seed=21, steps=3, sampler=name)["samples"]
    b = ksample(model, positive, negative, empty(1), seed=21, steps=3, sampler=name)["samples"]
    c = ksample(model, positive, negative, empty(1), seed=22, steps=3, sampler=name)["samples"]
    assert torch.equal(a, b) and torch.isfinite(a).all()
    assert close(a, c) > 1e-3


def test_the_references_tell_the_samplers_apart(guider):
    sigmas = compute_sigmas(guider.model.scheduler_config, "karras", 4)
    with torch.inference_mode():
        seeds_2 = reference_seeds(loop_run(guider, sigmas, 5), 5, (0.5,), True)
        heun = named_sampler("exp_heun_2_x0_sde").sample_loop(loop_run(guider, sigmas, 5))[0]
        er_sde = named_sampler("er_sde").sample_loop(loop_run(guider, sigmas, 5))[0]
        other_seed = named_sampler("seeds_2").sample_loop(loop_run(guider, sigmas, 6))[0]
    for other in (heun, er_sde, other_seed):
        assert close(other, seeds_2) > 1e-3


def test_inpainting_mask_keeps_the_unmasked_latent(model, positive, negative):
    source = {"samples": torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))}
    mask = torch.zeros((1, 8, 8))
    mask[:, :, 4:] = 1.0
    for name in ("er_sde", "seeds_3"):
        out = ksample(model, positive, negative, {**source, "noise_mask": mask}, seed=3, steps=3, sampler=name)
        kept, painted = out["samples"][..., :4], out["samples"][..., 4:]
        assert torch.allclose(kept, source["samples"][..., :4], atol=1e-5)
        assert close(painted, source["samples"][..., 4:]) > 1e-2


# -- the nodes SamplerER_SDE and SamplerSEEDS2 ------------------------------------------------------


def test_node_schemas():
    from nodes.registry import builtin_registry
    from server.object_info import describe

    registry = builtin_registry()
    er, seeds = (describe(registry[name].schema) for name in ("SamplerER_SDE", "SamplerSEEDS2"))
    assert er["input_order"]["required"] == ["solver_type", "max_stage", "eta", "s_noise"]
    assert er["input"]["required"]["solver_type"][0] == ["ER-SDE", "Reverse-time SDE", "ODE"]
    stage = er["input"]["required"]["max_stage"][1]
    assert (stage["default"], stage["min"], stage["max"]) == (3, 1, 3)
    assert seeds["input_order"]["required"] == ["solver_type", "eta", "s_noise", "r"]
    assert seeds["input"]["required"]["solver_type"][0] == ["phi_1", "phi_2"]
    r = seeds["input"]["required"]["r"][1]
    assert (r["default"], r["min"], r["max"]) == (0.5, 0.01, 1.0)
    for info in (er, seeds):
        assert info["output"] == ["SAMPLER"] and info["category"] == "sampling/custom_sampling/samplers"
        assert [info["input"]["required"][k][1]["default"] for k in ("eta", "s_noise")] == [1.0, 1.0]


def test_the_nodes_build_comfyuis_settings():
    er = SamplerER_SDE()
    assert repr(er.run("ER-SDE", 2, 0.3, 0.7)[0]) == repr(ERSDESampler(0.7, 2))  # eta ignored
    assert repr(er.run("Reverse-time SDE", 3, 0.5, 0.7)[0]) == repr(ERSDESampler(0.7, 3, 0.5))
    assert repr(er.run("Reverse-time SDE", 3, 0.0, 0.7)[0]) == repr(ERSDESampler(0.0, 3, 0.0))
    assert repr(er.run("ODE", 1, 2.0, 1.0)[0]) == repr(ERSDESampler(0.0, 1, 0.0))
    seeds = SamplerSEEDS2().run("phi_2", 0.4, 0.9, 0.3)[0]
    assert repr(seeds) == repr(SEEDSSampler((0.3,), "phi_2", 0.4, 0.9))


def _custom(model, positive, negative, sampler, seed: int, steps: int = 4, add_noise: bool = True) -> torch.Tensor:
    sigmas = sn.BasicScheduler().run(model, "karras", steps, 1.0)[0]
    out = sn.SamplerCustom().run(model, add_noise, seed, 5.0, positive, negative, sampler, sigmas, empty(1))
    return first_latent(out)["samples"]


@pytest.mark.parametrize(
    "name, node",
    [
        ("er_sde", lambda: SamplerER_SDE().run("ER-SDE", 3, 1.0, 1.0)[0]),
        ("seeds_2", lambda: SamplerSEEDS2().run("phi_1", 1.0, 1.0, 0.5)[0]),
        ("exp_heun_2_x0_sde", lambda: SamplerSEEDS2().run("phi_2", 1.0, 1.0, 1.0)[0]),
        ("exp_heun_2_x0", lambda: SamplerSEEDS2().run("phi_2", 0.0, 1.0, 1.0)[0]),
    ],
)
def test_the_nodes_stand_for_ksamplers_names(model, positive, negative, name, node):
    """As ComfyUI's node description says; exp_heun_2_x0 is a separate implementation
    (nodes/samplers/exponential.py), so it agrees to round-off only."""
    custom = _custom(model, positive, negative, node(), seed=9)
    ksampler = ksample(model, positive, negative, empty(1), seed=9, steps=4, sampler=name)["samples"]
    assert close(custom, ksampler) < (1e-5 if name == "exp_heun_2_x0" else 1e-7), name


def test_the_ode_types_ignore_the_seed_and_the_sde_types_do_not(model, positive, negative):
    ode = SamplerER_SDE().run("ODE", 3, 1.0, 1.0)[0]
    one = _custom(model, positive, negative, ode, seed=9, add_noise=False)
    assert torch.equal(one, _custom(model, positive, negative, ode, seed=10, add_noise=False))
    for sde in (
        SamplerER_SDE().run("Reverse-time SDE", 3, 1.0, 1.0)[0],
        SamplerSEEDS2().run("phi_2", 1.0, 1.0, 0.3)[0],
    ):
        one = _custom(model, positive, negative, sde, seed=9, add_noise=False)
        assert close(one, _custom(model, positive, negative, sde, seed=10, add_noise=False)) > 1e-4
    reverse = _custom(model, positive, negative, SamplerER_SDE().run("Reverse-time SDE", 3, 1.0, 1.0)[0], seed=9)
    assert (
        close(reverse, ksample(model, positive, negative, empty(1), seed=9, steps=4, sampler="er_sde")["samples"])
        > 1e-4
    )


def test_the_nodes_run_in_a_prompt(executor, model, positive, negative):
    nodes = [
        (
            {
                "class_type": "SamplerER_SDE",
                "inputs": {"solver_type": "ER-SDE", "max_stage": 3, "eta": 1.0, "s_noise": 1.0},
            },
            "er_sde",
        ),
        (
            {"class_type": "SamplerSEEDS2", "inputs": {"solver_type": "phi_1", "eta": 1.0, "s_noise": 1.0, "r": 0.5}},
            "seeds_2",
        ),
    ]
    for node, name in nodes:
        mean = run_prompt(executor, custom_prompt(node, steps=3, seed=5)).outputs["4"]["mean"][0]
        direct = ksample(model, positive, negative, empty(1), seed=5, steps=3, sampler=name)["samples"]
        assert mean == pytest.approx(float(direct.mean()), rel=1e-5), name
