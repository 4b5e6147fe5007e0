"""Heavy-ball and generalised heavy-ball momentum samplers (Wizadwongsa et al., arXiv 2307.11118):
their coefficients, momentum 1 = the base sampler, and the names in KSampler, KSamplerSelect and
SamplerMomentum on the tiny random UNet."""

from __future__ import annotations

import math
from collections import deque

import pytest
import torch

from engine import validate_prompt
from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.samplers import _IPNDM_WEIGHTS, COMFYUI_SAMPLER_ORDER, SAMPLER_NAMES, SAMPLERS, compute_sigmas
from nodes.samplers.momentum import (
    DEFAULT_MOMENTUM,
    METHODS,
    MomentumSampler,
    SamplerMomentum,
    _combine,
    adams_bashforth_weights,
    ghvb_weights,
)
from tests.support.tiny_unet import empty, ksample

from .prompts import custom_prompt, ksampler_prompt, run_prompt

#: Adams-Bashforth weights of f_n, f_(n-1), ... as published (e.g. Hairer, Nørsett, Wanner, III.1)
PUBLISHED_AB = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
    5: (1901 / 720, -2774 / 720, 2616 / 720, -1274 / 720, 251 / 720),
}


def _published_ghvb(order: int, b: float) -> tuple[float, ...]:
    """The GHVB weights as the paper's authors tabulate them (orders 2-4), for momentum ``b``."""
    table = {
        2: ((2 + b), -(2 - b)),
        3: ((18 + 5 * b), -(24 - 8 * b), (6 - b)),
        4: ((46 + 9 * b), -(78 - 19 * b), (42 - 5 * b), -(10 - b)),
    }
    scale = {2: 2, 3: 12, 4: 24}[order] * b
    return tuple(w / scale for w in table[order])


def test_plms_uses_the_published_adams_bashforth_weights():
    for order, weights in PUBLISHED_AB.items():
        assert adams_bashforth_weights(order) == pytest.approx(weights, abs=1e-15)
    # Weft's ipndm (the PLMS base) steps with the same weights
    for order in range(1, 5):
        assert adams_bashforth_weights(order) == pytest.approx(_IPNDM_WEIGHTS[order - 1], abs=1e-15)


@pytest.mark.parametrize("beta", [1.0, 0.9, 0.8, 0.5, 0.1])
def test_ghvb_weights_match_the_paper_and_are_consistent(beta):
    for order in (2, 3, 4):
        assert ghvb_weights(order, beta) == pytest.approx(_published_ghvb(order, beta), rel=1e-12)
    for order in range(1, 6):
        assert math.fsum(ghvb_weights(order, beta)) == pytest.approx(1.0, abs=1e-12)  # consistency
    assert ghvb_weights(1, beta) == (1.0,)  # order 1 is heavy-ball Euler
    with pytest.raises(ValueError, match="momentum"):
        ghvb_weights(2, 0.0)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_ghvb_keeps_the_order_of_its_formula(order):
    """On a polynomial derivative of degree < order, GHVB's combination of the momentum averages
    integrates a step exactly (as Adams-Bashforth does on the raw values); heavy ball does not."""
    beta, h = 0.6, 0.1
    coefficients = [0.7, -1.3, 2.1, 0.4][:order]

    def f(t: float) -> torch.Tensor:
        return torch.tensor(sum(c * t**k for k, c in enumerate(coefficients)), dtype=torch.float64)

    def integral(a: float, b: float) -> float:
        return sum(c * (b ** (k + 1) - a ** (k + 1)) / (k + 1) for k, c in enumerate(coefficients))

    times = [h * (n - 300) for n in range(301)]  # ends at t = 0; the average forgets its start
    velocity, averages, raw = f(times[0]), deque(maxlen=order), deque(maxlen=order)
    hb_velocity = None
    for t in times:
        velocity = torch.lerp(velocity, f(t), beta)
        averages.append(velocity)
        raw.append(f(t))
        if len(raw) == order:
            slope = _combine(adams_bashforth_weights(order), raw)
            hb_velocity = slope if hb_velocity is None else torch.lerp(hb_velocity, slope, beta)
    exact = integral(0.0, h)
    assert float(_combine(ghvb_weights(order, beta), averages)) * h == pytest.approx(exact, rel=1e-10)
    assert float(_combine(adams_bashforth_weights(order), raw)) * h == pytest.approx(exact, rel=1e-10)
    assert float(hb_velocity) * h != pytest.approx(exact, rel=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_momentum_1_equals_the_base_sampler(model, positive, negative, method):
    """Momentum 1 (no damping) is DPM-Solver++(2M) = Weft's dpmpp_2m, or PLMS = Weft's ipndm."""
    base = "dpmpp_2m" if method.startswith("dpmpp") else "ipndm"
    for scheduler in ("simple", "karras"):
        sigmas = compute_sigmas(model.scheduler_config, scheduler, 8)
        ours = sn.SamplerCustom().run(
            model, True, 3, 5.0, positive, negative, MomentumSampler(method, 1.0), sigmas, empty()
        )[0]["samples"]
        reference = ksample(
            model, positive, negative, empty(), seed=3, steps=8, cfg=5.0, sampler=base, scheduler=scheduler
        )["samples"]
        # 1e-5 of the latent's scale: float32 rounding differs between diffusers' step and this loop
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5 * float(reference.abs().max()))


@pytest.mark.parametrize("method", METHODS)
def test_momentum_below_1_changes_the_result_but_stays_close(model, positive, negative, method):
    sigmas = compute_sigmas(model.scheduler_config, "simple", 8)

    def run(beta: float) -> torch.Tensor:
        sampler = MomentumSampler(method, beta)
        return sn.SamplerCustom().run(model, True, 3, 5.0, positive, negative, sampler, sigmas, empty())[0]["samples"]

    plain, damped, damped_more = run(1.0), run(DEFAULT_MOMENTUM), run(0.5)
    euler = ksample(model, positive, negative, empty(), seed=3, steps=8, sampler="euler", scheduler="simple")["samples"]
    change = float((damped - plain).abs().mean())
    assert change > 1e-4 * float(plain.abs().mean())  # far above float32 rounding (~1e-6)
    # closer to the plain sampler than another sampler of the same steps is, and more damping moves further
    assert change < float((euler - plain).abs().mean())
    assert change < float((damped_more - plain).abs().mean())
    assert torch.isfinite(damped).all()


def test_ghvb_stays_nearer_the_base_than_heavy_ball(model, positive, negative):
    """GHVB keeps the method's order, heavy ball drops to first order (the paper's trade-off)."""
    sigmas = compute_sigmas(model.scheduler_config, "simple", 8)

    def run(method: str, beta: float) -> torch.Tensor:
        sampler = MomentumSampler(method, beta)
        return sn.SamplerCustom().run(model, True, 4, 5.0, positive, negative, sampler, sigmas, empty())[0]["samples"]

    for family in ("dpmpp_2m", "plms"):
        plain = run(f"{family}_hb", 1.0)
        hb = float((run(f"{family}_hb", 0.8) - plain).abs().mean())
        ghvb = float((run(f"{family}_ghvb", 0.8) - plain).abs().mean())
        assert ghvb < hb, (family, ghvb, hb)


def test_momentum_names_are_listed_after_the_existing_ones():
    # ComfyUI's names keep ComfyUI's combo order; Weft's own follow them
    assert [n for n in SAMPLER_NAMES if n in SAMPLERS] == [n for n in COMFYUI_SAMPLER_ORDER if n in SAMPLERS]
    assert SAMPLER_NAMES[-len(METHODS) :] == METHODS
    assert SAMPLER_NAMES.index("dpm_adaptive") < SAMPLER_NAMES.index("dpmpp_2m_hb")


def test_names_usable_in_ksampler_ksamplerselect_and_sampler_momentum(executor, model, positive, negative):
    for method in METHODS:
        # 5 steps: DPM-Solver++(2M)'s first step is first order, its last lands on the clean estimate,
        # and its velocity starts at the first second-order step, so momentum shows from step 3 of 5
        through_ksampler = run_prompt(executor, ksampler_prompt(method, seed=5, steps=5)).outputs["4"]["mean"][0]
        select = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": method}}
        through_select = run_prompt(executor, custom_prompt(select, seed=5, steps=5)).outputs["4"]["mean"][0]
        node = {"class_type": "SamplerMomentum", "inputs": {"method": method, "momentum": DEFAULT_MOMENTUM}}
        through_node = run_prompt(executor, custom_prompt(node, seed=5, steps=5)).outputs["4"]["mean"][0]
        undamped = {"class_type": "SamplerMomentum", "inputs": {"method": method, "momentum": 1.0}}
        through_undamped = run_prompt(executor, custom_prompt(undamped, seed=5, steps=5)).outputs["4"]["mean"][0]
        assert through_ksampler == pytest.approx(through_select, rel=1e-5)
        assert through_node == pytest.approx(through_select, rel=1e-6)
        assert through_undamped != pytest.approx(through_node, rel=1e-7)
    assert isinstance(sn.KSamplerSelect().run("plms_ghvb")[0], MomentumSampler)
    assert SamplerMomentum().run("dpmpp_2m_hb", 0.9)[0].momentum == 0.9


def test_sampler_momentum_refuses_bad_inputs(executor):
    for inputs, message in (
        ({"method": "dpmpp_2m_hb", "momentum": 0.0}, "momentum"),
        ({"method": "euler_hb", "momentum": 0.8}, "method"),
    ):
        prompt = custom_prompt({"class_type": "SamplerMomentum", "inputs": inputs})
        result = validate_prompt(prompt, executor.registry, ["4"])
        assert not result.ok
        assert message in str(result.node_errors["5"])
    with pytest.raises(ValueError, match="momentum"):
        MomentumSampler("plms_hb", 1.5)
