"""The ComfyUI sampler names Weft refused before (issue 11) and ComfyUI's sampler nodes for them.

Each sampler runs through Weft's real sampling path (``sampling.sample``: guider, own loop, the
CFG++ capture of the unconditional estimate) on the tiny random UNet and is compared with a
reference loop written here from the published update rule. The reference's denoiser is written
here too: the UNet's noise prediction for the positive and the negative conditioning, each in
its own call at ComfyUI's whole timestep (``tests/support/comfy_timestep.py``), combined by CFG, so neither Weft's guider nor its loop is part of the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from nodes.diffusion.guidance import Guider
from nodes.diffusion.noise import seeded_noise
from nodes.diffusion.samplers import (
    COMFYUI_SAMPLER_ORDER,
    SAMPLER_NAMES,
    UNSUPPORTED_SAMPLERS,
    compute_sigmas,
    model_sigmas,
    resolve_sampler,
)
from nodes.diffusion.sampling import sample
from nodes.samplers.ancestral import (
    DPMPP2SAncestralSampler,
    EulerCFGppAlternative,
    EulerSampler,
    SamplerDPMPP_2S_Ancestral,
    SamplerEulerAncestral,
    SamplerEulerCFGpp,
)
from nodes.samplers.multistep import LmsSampler, SamplerLMS, ipndm_v_weights
from tests.samplers.prompts import LatentMean, TinySource, custom_prompt, ksampler_prompt, run_prompt
from tests.support.comfy_timestep import comfy_timestep
from tests.support.tiny_unet import empty, ksample

NEW_NAMES = (
    "euler_cfg_pp",
    "euler_ancestral_cfg_pp",
    "heunpp2",
    "exp_heun_2_x0",
    "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_2m_cfg_pp",
    "ipndm_v",
    "res_multistep",
    "res_multistep_cfg_pp",
    "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp",
    "gradient_estimation",
    "gradient_estimation_cfg_pp",
)
SEED, STEPS, CFG = 11, 7, 3.5


class Denoiser:
    """``(guided, unconditional)`` clean estimates in k-diffusion's space (``x = x0 + sigma eps``)."""

    def __init__(self, model, positive, negative, cfg: float) -> None:
        self.model, self.cfg = model, cfg
        self.cond, self.uncond = positive[0][0], negative[0][0]
        self.ms = model_sigmas(model.scheduler_config)

    def __call__(self, x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        x_in = x / math.sqrt(1 + sigma * sigma)
        t = torch.tensor([float(comfy_timestep(sigma, self.ms.log_sigmas))])  # ComfyUI's whole timestep
        cond = x - sigma * self.model.predict_noise(x_in, t, self.cond)
        uncond = x - sigma * self.model.predict_noise(x_in, t, self.uncond)
        return uncond + (cond - uncond) * self.cfg, uncond


def ancestral(sigma: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """k-diffusion's (sigma_down, sigma_up): DDPM's posterior noise scaled by eta."""
    if eta == 0:
        return sigma_next, 0.0
    up = min(sigma_next, eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - up**2), up


def phi1(z: float) -> float:
    return math.expm1(z) / z


def phi2(z: float) -> float:
    return (phi1(z) - 1) / z


# -- reference loops, from the published rules ------------------------------------------------
def ref_euler(den, x, sigmas, noise, eta=0.0, s_noise=1.0, cfg_pp=False):
    """Karras et al.'s Euler (ancestral with eta); CFG++ (arXiv 2406.08070, Algorithm 1 in sigma
    space): land on the guided estimate, re-noise along the unconditional noise to sigma_down."""
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        guided, uncond = den(x, s)
        down, up = ancestral(s, s_next, eta)
        if cfg_pp:
            x = guided if s_next == 0 else guided + down * (x - uncond) / s
            if s_next > 0 and eta > 0:
                x = x + noise() * s_noise * up
        elif down == 0:
            x = guided
        else:
            x = x + (x - guided) / s * (down - s) + noise() * s_noise * up
    return x


def ref_dpmpp_2s(den, x, sigmas, noise, eta=1.0, s_noise=1.0, cfg_pp=False):
    """DPM-Solver++(2S) (arXiv 2211.01095, Algorithm 1, r = 1/2) ancestral. CFG++ as ComfyUI runs it:
    the re-noising of the full step uses the unconditional estimate of the midpoint call."""
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        guided, uncond = den(x, s)
        down, up = ancestral(s, s_next, eta)
        if down == 0:
            x = guided
        else:
            lam, lam_next = -math.log(s), -math.log(down)
            h = lam_next - lam
            mid = math.exp(-(lam + h / 2))
            base = x + (guided - uncond) if cfg_pp else x
            u = base * (mid / s) + (1 - math.exp(-h / 2)) * guided
            guided_mid, uncond_mid = den(u, mid)
            base = x + (guided - uncond_mid) if cfg_pp else x
            x = base * (down / s) + (1 - math.exp(-h)) * guided_mid
        if s_next > 0:
            x = x + noise() * s_noise * up
    return x


def ref_dpmpp_2m_cfg_pp(den, x, sigmas, noise):
    """DPM-Solver++(2M) with CFG++: x' = guided + e^-h (x - uncond) + (1 - e^-h)/(2r) (guided - old uncond)."""
    old = None
    for i, (s, s_next) in enumerate(zip(sigmas, sigmas[1:], strict=False)):
        guided, uncond = den(x, s)
        if s_next == 0:
            x = guided
        else:
            h = math.log(s / s_next)
            x_new = guided + math.exp(-h) * (x - uncond)
            if old is not None:
                r = math.log(sigmas[i - 1] / s) / h
                x_new = x_new + (1 - math.exp(-h)) / (2 * r) * (guided - old)
            x = x_new
        old = uncond
    return x


def ref_res_multistep(den, x, sigmas, noise, eta=0.0, cfg_pp=False):
    """RES (arXiv 2308.02157): x' = e^-h x + h (b1 D + b2 D_old), b2 = phi2(-h)/c2, b1 = phi1(-h) - b2,
    c2 the previous estimate's offset (the last step's length back, over h); Euler to start."""
    old, old_down = None, None
    for i, (s, s_next) in enumerate(zip(sigmas, sigmas[1:], strict=False)):
        guided, uncond = den(x, s)
        d_est = uncond if cfg_pp else guided
        down, up = ancestral(s, s_next, eta)
        if down == 0 or old is None:
            x = guided + down * (x - d_est) / s
        else:
            h = math.log(s / down)
            c2 = -math.log(sigmas[i - 1] / old_down) / h
            b2 = phi2(-h) / c2
            b1 = phi1(-h) - b2
            if cfg_pp:
                x = x + guided - uncond
            x = math.exp(-h) * x + h * (b1 * d_est + b2 * old)
        if s_next > 0 and eta > 0:
            x = x + noise() * up
        old, old_down = d_est, down
    return x


def ref_exp_heun(den, x, sigmas, noise):
    """Exponential Heun with the data prediction: DDIM to the next sigma, then
    x' = e^-h x + h ((phi1 - phi2)(-h) D + phi2(-h) D_next)."""
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        guided, _ = den(x, s)
        if s_next == 0:
            x = guided
            continue
        h = math.log(s / s_next)
        predictor = (s_next / s) * x + (1 - s_next / s) * guided
        guided_next, _ = den(predictor, s_next)
        x = math.exp(-h) * x + h * ((phi1(-h) - phi2(-h)) * guided + phi2(-h) * guided_next)
    return x


def ref_heunpp2(den, x, sigmas, noise):
    """Heun++: a weighted mean of the derivatives at sigma_i, sigma_(i+1), sigma_(i+2)."""
    d_of = lambda y, s: (y - den(y, s)[0]) / s  # noqa: E731
    for i, (s, s_next) in enumerate(zip(sigmas, sigmas[1:], strict=False)):
        d = d_of(x, s)
        dt = s_next - s
        if s_next == sigmas[-1]:
            x = x + d * dt
            continue
        x2 = x + d * dt
        d2 = d_of(x2, s_next)
        if sigmas[i + 2] == sigmas[-1]:
            w2 = s_next / (2 * sigmas[0])
            x = x + ((1 - w2) * d + w2 * d2) * dt
        else:
            s3 = sigmas[i + 2]
            d3 = d_of(x2 + d2 * (s3 - s_next), s3)
            w2, w3 = s_next / (3 * sigmas[0]), s3 / (3 * sigmas[0])
            x = x + ((1 - w2 - w3) * d + w2 * d2 + w3 * d3) * dt
    return x


def ref_ipndm_v(den, x, sigmas, noise):
    """Variable-step iPNDM as published (zju-pi diff-solvers, arXiv 2312.00094), coefficient form."""
    ds: list[torch.Tensor] = []
    for i, (s, s_next) in enumerate(zip(sigmas, sigmas[1:], strict=False)):
        guided, _ = den(x, s)
        d = (x - guided) / s
        if s_next == 0:
            x = guided
        else:
            hs = [sigmas[i + 1 - k] - sigmas[i - k] for k in range(min(4, i + 1))]
            coeffs = _ipndm_v_coefficients(hs)
            x = x + (s_next - s) * sum(c * v for c, v in zip(coeffs, [d, *reversed(ds)], strict=False))
        ds = (ds + [d])[-3:]
    return x


def _ipndm_v_coefficients(hs: list[float]) -> list[float]:
    if len(hs) == 1:
        return [1.0]
    h0, h1 = hs[0], hs[1]
    if len(hs) == 2:
        return [(2 + h0 / h1) / 2, -(h0 / h1) / 2]
    h2 = hs[2]
    t1 = (1 - h0 / (3 * (h0 + h1)) * (h0 * (h0 + h1)) / (h1 * (h1 + h2))) / 2
    if len(hs) == 3:
        return [(2 + h0 / h1) / 2 + t1, -(h0 / h1) / 2 - (1 + h1 / h2) * t1, t1 * h1 / h2]
    h3 = hs[3]
    t2 = (
        ((1 - h0 / (3 * (h0 + h1))) / 2 + (1 - h0 / (2 * (h0 + h1))) * h0 / (6 * (h0 + h1 + h2)))
        * (h0 * (h0 + h1) * (h0 + h1 + h2))
        / (h1 * (h1 + h2) * (h1 + h2 + h3))
    )
    a = h1 * (h1 + h2) / (h2 * (h2 + h3))
    return [
        (2 + h0 / h1) / 2 + t1 + t2,
        -(h0 / h1) / 2 - (1 + h1 / h2) * t1 - (1 + h1 / h2 + a) * t2,
        t1 * h1 / h2 + (h1 / h2 + a * (1 + h2 / h3)) * t2,
        -t2 * a * h1 / h2,
    ]


def ref_gradient_estimation(den, x, sigmas, noise, gamma=2.0, cfg_pp=False):
    """Permenter & Yuan (arXiv 2306.04848), Algorithm 2: step along gamma d_n + (1 - gamma) d_(n-1)."""
    old = None
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        guided, uncond = den(x, s)
        d = (x - (uncond if cfg_pp else guided)) / s
        if s_next == 0:
            x = guided
        else:
            d_bar = d if old is None else gamma * d + (1 - gamma) * old
            x = (guided + d * s_next + (d_bar - d) * (s_next - s)) if cfg_pp else x + d_bar * (s_next - s)
        old = d
    return x


REFERENCES: dict[str, Callable] = {
    "euler_cfg_pp": lambda *a: ref_euler(*a, eta=0.0, cfg_pp=True),
    "euler_ancestral_cfg_pp": lambda *a: ref_euler(*a, eta=1.0, cfg_pp=True),
    "heunpp2": ref_heunpp2,
    "exp_heun_2_x0": ref_exp_heun,
    "dpmpp_2s_ancestral_cfg_pp": lambda *a: ref_dpmpp_2s(*a, cfg_pp=True),
    "dpmpp_2m_cfg_pp": ref_dpmpp_2m_cfg_pp,
    "ipndm_v": ref_ipndm_v,
    "res_multistep": ref_res_multistep,
    "res_multistep_cfg_pp": lambda *a: ref_res_multistep(*a, cfg_pp=True),
    "res_multistep_ancestral": lambda *a: ref_res_multistep(*a, eta=1.0),
    "res_multistep_ancestral_cfg_pp": lambda *a: ref_res_multistep(*a, eta=1.0, cfg_pp=True),
    "gradient_estimation": ref_gradient_estimation,
    "gradient_estimation_cfg_pp": lambda *a: ref_gradient_estimation(*a, cfg_pp=True),
}


# -- helpers -----------------------------------------------------------------------------------
def run_weft(model, positive, negative, sampler, sigmas, cfg=CFG, seed=SEED) -> torch.Tensor:
    """The sampled latent (k-diffusion's scaled space) through Weft's sampling path."""
    guider = Guider(model, cfg)
    guider.set_conds(positive, negative)
    latent = empty()["samples"]
    result = sample(guider, sampler, sigmas, seeded_noise(tuple(latent.shape), seed), latent, seed=seed)
    return model.process_in(result.samples)


def run_reference(reference, model, positive, negative, sigmas, cfg=CFG, seed=SEED) -> torch.Tensor:
    sigma_list = [float(s) for s in sigmas]
    assert math.isclose(sigma_list[0], model_sigmas(model.scheduler_config).sigma_max, rel_tol=1e-5)
    x = seeded_noise((1, 4, 8, 8), seed) * math.sqrt(1 + sigma_list[0] ** 2)  # empty latent, from the top
    generator = torch.Generator("cpu").manual_seed(seed + 1)  # ComfyUI's step noise on the CPU

    def noise() -> torch.Tensor:
        return torch.randn(x.shape, generator=generator)

    with torch.inference_mode():
        return reference(Denoiser(model, positive, negative, cfg), x, sigma_list, noise)


def assert_matches(ours: torch.Tensor, reference: torch.Tensor, rel: float = 1e-4) -> None:
    """Equal within ``rel`` of the latent's scale (float32 rounding is about 1e-6 of it)."""
    torch.testing.assert_close(ours, reference, rtol=0, atol=rel * float(reference.abs().max()))


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def positive(tiny_positive):
    return tiny_positive


@pytest.fixture(scope="module")
def negative(tiny_negative):
    return tiny_negative


@pytest.fixture(scope="module")
def karras(model):
    return compute_sigmas(model.scheduler_config, "karras", STEPS)


# -- the samplers against their references -----------------------------------------------------
@pytest.mark.parametrize("name", NEW_NAMES)
def test_sampler_matches_its_published_rule(model, positive, negative, karras, name):
    ours = run_weft(model, positive, negative, resolve_sampler(name), karras)
    reference = run_reference(REFERENCES[name], model, positive, negative, karras)
    assert_matches(ours, reference)
    assert torch.isfinite(ours).all()


def test_the_references_tell_the_samplers_apart(model, positive, negative, karras):
    """The 1e-4 tolerance is far below how much the samplers differ: every pair of new samplers
    lands more than 1e-3 of the latent's scale apart (so a sampler mixed up with another fails)."""
    results = {name: run_weft(model, positive, negative, resolve_sampler(name), karras) for name in NEW_NAMES}
    for i, a in enumerate(NEW_NAMES):
        for b in NEW_NAMES[i + 1 :]:
            gap = float((results[a] - results[b]).abs().max()) / float(results[a].abs().max())
            assert gap > 1e-3, (a, b, gap)


@pytest.mark.parametrize(
    ("node_sampler", "reference"),
    [
        (EulerSampler(0.5, 0.8), lambda *a: ref_euler(*a, eta=0.5, s_noise=0.8)),
        (EulerSampler(0.7, 1.2, cfg_pp=True), lambda *a: ref_euler(*a, eta=0.7, s_noise=1.2, cfg_pp=True)),
        (DPMPP2SAncestralSampler(0.6, 0.9), lambda *a: ref_dpmpp_2s(*a, eta=0.6, s_noise=0.9)),
    ],
    ids=["SamplerEulerAncestral", "SamplerEulerAncestralCFGPP", "SamplerDPMPP_2S_Ancestral"],
)
def test_node_settings_follow_the_rule(model, positive, negative, karras, node_sampler, reference):
    assert_matches(
        run_weft(model, positive, negative, node_sampler, karras),
        run_reference(reference, model, positive, negative, karras),
    )


def test_node_samplers_at_defaults_equal_weft_s_existing_ones(model, positive, negative, karras):
    """SamplerEulerAncestral / SamplerDPMPP_2S_Ancestral at eta 1 and SamplerLMS at order 4 are
    KSampler's euler_ancestral (a diffusers scheduler), dpmpp_2s_ancestral and lms (Weft's own
    steppers): independent implementations of the same rules and the same noise."""
    pairs = [
        (SamplerEulerAncestral().run(1.0, 1.0)[0], "euler_ancestral"),
        (SamplerDPMPP_2S_Ancestral().run(1.0, 1.0)[0], "dpmpp_2s_ancestral"),
        (SamplerLMS().run(4)[0], "lms"),
        (LmsSampler(1), "euler"),
    ]
    for ours, name in pairs:
        assert_matches(
            run_weft(model, positive, negative, ours, karras),
            run_weft(model, positive, negative, resolve_sampler(name), karras),
        )


def test_euler_cfgpp_alternative_version(model, positive, negative, karras):
    """ComfyUI's experimental "alternative": Euler along the derivative of x - guided + uncond."""

    def reference(den, x, sigmas, noise):
        for s, s_next in zip(sigmas, sigmas[1:], strict=False):
            guided, uncond = den(x, s)
            x = x + (x - guided + uncond - guided) / s * (s_next - s)
        return x

    sampler = SamplerEulerCFGpp().run("alternative")[0]
    assert isinstance(sampler, EulerCFGppAlternative)
    assert_matches(
        run_weft(model, positive, negative, sampler, karras),
        run_reference(reference, model, positive, negative, karras),
    )
    regular = SamplerEulerCFGpp().run("regular")[0]
    assert_matches(
        run_weft(model, positive, negative, regular, karras),
        run_weft(model, positive, negative, resolve_sampler("euler_cfg_pp"), karras),
    )


# -- CFG++ at guidance 1 -------------------------------------------------------------------------
CFG_PP_BASES = {
    "euler_cfg_pp": "euler",
    "euler_ancestral_cfg_pp": "euler_ancestral",
    "dpmpp_2m_cfg_pp": "dpmpp_2m",
    "res_multistep_cfg_pp": "res_multistep",
    "res_multistep_ancestral_cfg_pp": "res_multistep_ancestral",
    "gradient_estimation_cfg_pp": "gradient_estimation",
}


@pytest.mark.parametrize(("name", "base"), CFG_PP_BASES.items())
def test_cfg_pp_at_guidance_1_is_its_base_sampler(model, positive, name, base):
    """With one prediction (guidance 1 and the negative equal to the positive, or no negative:
    BasicGuider) the unconditional estimate is the guided one and CFG++ is its base sampler."""
    sigmas = compute_sigmas(model.scheduler_config, "karras", STEPS)
    plain = run_weft(model, positive, None, resolve_sampler(base), sigmas, cfg=1.0)
    assert_matches(run_weft(model, positive, None, resolve_sampler(name), sigmas, cfg=1.0), plain)
    assert_matches(run_weft(model, positive, positive, resolve_sampler(name), sigmas, cfg=1.0), plain)


def test_dpmpp_2s_cfg_pp_keeps_comfyui_s_midpoint_quirk(model, positive):
    """ComfyUI's dpmpp_2s_ancestral_cfg_pp re-noises with the midpoint's unconditional estimate, so
    even with a single prediction it is not dpmpp_2s_ancestral: Weft gives ComfyUI's picture."""
    sigmas = compute_sigmas(model.scheduler_config, "karras", STEPS)
    ours = run_weft(model, positive, None, resolve_sampler("dpmpp_2s_ancestral_cfg_pp"), sigmas, cfg=1.0)
    plain = run_weft(model, positive, None, resolve_sampler("dpmpp_2s_ancestral"), sigmas, cfg=1.0)
    assert float((ours - plain).abs().max()) > 1e-3 * float(plain.abs().max())


def test_cfg_pp_evaluates_the_negative_at_cfg_1(model, positive, negative, karras):
    """As ComfyUI (disable_cfg1_optimization), the negative still counts at cfg 1: CFG++ then
    re-noises with it, so the result differs from the same sampler without a negative."""
    with_negative = run_weft(model, positive, negative, resolve_sampler("euler_cfg_pp"), karras, cfg=1.0)
    reference = run_reference(REFERENCES["euler_cfg_pp"], model, positive, negative, karras, cfg=1.0)
    assert_matches(with_negative, reference)
    without = run_weft(model, positive, None, resolve_sampler("euler_cfg_pp"), karras, cfg=1.0)
    assert float((with_negative - without).abs().max()) > 1e-3 * float(without.abs().max())


def test_the_guider_and_model_are_left_unchanged(model, positive, negative, karras):
    guider = Guider(model, CFG)
    guider.set_conds(positive, negative)
    options = dict(model.model_options)
    latent = empty()["samples"]
    sample(guider, resolve_sampler("res_multistep_cfg_pp"), karras, seeded_noise((1, 4, 8, 8), 1), latent, seed=1)
    assert guider.model is model and model.model_options == options


# -- coefficients, names, nodes ------------------------------------------------------------------
def test_ipndm_v_weights():
    # orders 1-3 on uniform steps: Adams-Bashforth; order 4 as published: (57, -65, 43, -11) / 24
    assert ipndm_v_weights([-1.0]) == [1.0]
    assert ipndm_v_weights([-1.0, -1.0]) == pytest.approx([1.5, -0.5])
    assert ipndm_v_weights([-1.0] * 3) == pytest.approx([23 / 12, -16 / 12, 5 / 12])
    assert ipndm_v_weights([-1.0] * 4) == pytest.approx([57 / 24, -65 / 24, 43 / 24, -11 / 24])
    # order 2 on uneven steps: variable-step Adams-Bashforth 2
    assert ipndm_v_weights([-1.0, -2.0]) == pytest.approx([1.25, -0.25])
    uneven = [-0.4, -1.1, -2.3, -3.0]
    for order in (2, 3, 4):
        assert ipndm_v_weights(uneven[:order]) == pytest.approx(_ipndm_v_coefficients(uneven[:order]), rel=1e-12)


def test_names_are_offered_in_comfyui_s_order():
    assert not set(NEW_NAMES) & set(UNSUPPORTED_SAMPLERS)
    assert set(NEW_NAMES) <= set(SAMPLER_NAMES)
    comfy = [n for n in SAMPLER_NAMES if n in COMFYUI_SAMPLER_ORDER]
    assert comfy == [n for n in COMFYUI_SAMPLER_ORDER if n in SAMPLER_NAMES]
    assert SAMPLER_NAMES[: len(comfy)] == tuple(comfy)  # Weft's own names come after ComfyUI's
    assert SAMPLER_NAMES[0] == "euler"


def test_node_schemas():
    """Their ComfyUI schemas (also compared with ComfyUI's table by tests/parity)."""
    from nodes.registry import builtin_registry
    from server.object_info import describe

    registry = builtin_registry()
    names = ("SamplerEulerAncestral", "SamplerEulerAncestralCFGPP", "SamplerDPMPP_2S_Ancestral", "SamplerLMS")
    info = {name: describe(registry[name].schema) for name in names}
    assert info["SamplerEulerAncestralCFGPP"]["display_name"] == "SamplerEulerAncestralCFG++"
    assert info["SamplerEulerAncestralCFGPP"]["input"]["required"]["eta"][1]["max"] == 1.0
    order = info["SamplerLMS"]["input"]["required"]["order"][1]
    assert (order["default"], order["min"], order["max"]) == (4, 1, 100)
    cfgpp = describe(registry["SamplerEulerCFGpp"].schema)
    assert cfgpp["input"]["required"]["version"][0] == ["regular", "alternative"]
    assert (cfgpp["category"], cfgpp["experimental"], cfgpp["display_name"]) == (
        "_for_testing",
        True,
        "SamplerEulerCFG++",
    )
    assert all(v["output"] == ["SAMPLER"] for v in info.values())


# -- through the engine ----------------------------------------------------------------------------
@pytest.fixture
def executor(model, positive, negative):
    from engine import Executor
    from nodes.registry import builtin_registry

    TinySource.values = (model, positive, negative)
    registry = builtin_registry()
    registry.register(TinySource, pack="tests")
    registry.register(LatentMean, pack="tests")
    return Executor(registry)


def test_every_name_runs_through_ksampler_and_ksamplerselect(executor, model, positive, negative):
    for name in NEW_NAMES:
        through_ksampler = run_prompt(executor, ksampler_prompt(name, steps=4, seed=3)).outputs["4"]["mean"][0]
        direct = ksample(model, positive, negative, empty(), seed=3, steps=4, sampler=name)["samples"]
        assert through_ksampler == pytest.approx(float(direct.mean()), rel=1e-5), name
        select = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": name}}
        through_select = run_prompt(executor, custom_prompt(select, steps=4, seed=3)).outputs["4"]["mean"][0]
        assert through_select == pytest.approx(through_ksampler, rel=1e-5), name


def test_sampler_nodes_run_in_a_prompt(executor, model, positive, negative):
    sigmas = compute_sigmas(model.scheduler_config, "karras", 4)
    nodes = [
        ({"class_type": "SamplerEulerAncestral", "inputs": {"eta": 0.5, "s_noise": 1.0}}, EulerSampler(0.5, 1.0)),
        (
            {"class_type": "SamplerEulerAncestralCFGPP", "inputs": {"eta": 1.0, "s_noise": 1.0}},
            resolve_sampler("euler_ancestral_cfg_pp"),
        ),
        ({"class_type": "SamplerDPMPP_2S_Ancestral", "inputs": {"eta": 1.0, "s_noise": 0.5}}, None),
        ({"class_type": "SamplerLMS", "inputs": {"order": 3}}, LmsSampler(3)),
        ({"class_type": "SamplerEulerCFGpp", "inputs": {"version": "alternative"}}, EulerCFGppAlternative()),
    ]
    for node, same in nodes:
        mean = run_prompt(executor, custom_prompt(node, steps=4, seed=5)).outputs["4"]["mean"][0]
        assert math.isfinite(mean)
        if same is not None:
            direct = run_weft(model, positive, negative, same, sigmas, cfg=5.0, seed=5)
            assert mean == pytest.approx(float(model.process_out(direct).mean()), rel=1e-5), node["class_type"]
