"""ComfyUI's DPM-Solver++ SDE samplers with Brownian-tree noise (nodes/samplers/dpmpp_sde.py).

The reference here is written from the formulas (DPM-Solver++, Lu et al., arXiv 2211.01095, in
k-diffusion's space as ComfyUI runs them) with torchsde's ``BrownianInterval`` built directly,
not from Weft's sampler or noise code; it runs on the tiny real UNet through the same guided
denoiser as the sampler, and the two must agree to 1e-5.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable

import pytest
import torch
import torchsde

from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.brownian import BrownianTreeNoise
from nodes.diffusion.guidance import Guider
from nodes.diffusion.loops import LoopRun
from nodes.diffusion.noise import seeded_noise
from nodes.diffusion.samplers import LOOP_SAMPLERS, SAMPLER_NAMES, SAMPLERS, UNSUPPORTED_SAMPLERS, compute_sigmas
from nodes.diffusion.types import default_scheduler_config
from nodes.samplers.dpmpp_sde import (
    NAMES,
    DPMPPMultistepSDESampler,
    DPMPPSDESampler,
    SamplerDPMPP_2M_SDE,
    SamplerDPMPP_3M_SDE,
    SamplerDPMPP_SDE,
    named_sampler,
)
from tests.support.tiny_unet import empty, ksample

from .prompts import first_latent

# The reference queries torchsde's interval at the schedule's lowest sigma, which the interval
# holds rounded to 1e-6 and clamps to, with a warning (Weft's sampler clamps first, quietly).
pytestmark = pytest.mark.filterwarnings("ignore:Should have ta>=t0:UserWarning")

#: ComfyUI 0.8.0's KSampler order of these names (comfy/samplers.py, KSAMPLER_NAMES)
COMFY_ORDER = (
    "dpmpp_sde",
    "dpmpp_sde_gpu",
    "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun",
    "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde",
    "dpmpp_3m_sde_gpu",
)


# -- the reference: the formulas, and torchsde's Brownian interval used directly ---------------------


def reference_noise(x: torch.Tensor, sigmas: torch.Tensor, seed: int) -> Callable[[float, float], torch.Tensor]:
    """``z(s, t) = (W(t) - W(s)) / sqrt(|t - s|)`` for one Brownian motion over the schedule's
    nonzero range: a dyadic ("halfway") tree resolved to 1e-6 with a pool of 24 entropy words,
    the seed as entropy, on the CPU, one motion for the whole batch."""
    low, high = float(sigmas[sigmas > 0].min()), float(sigmas.max())
    motion = torchsde.BrownianInterval(
        t0=low,
        t1=high,
        size=tuple(x.shape),
        dtype=x.dtype,
        device="cpu",
        entropy=seed,
        tol=1e-6,
        pool_size=24,
        halfway_tree=True,
    )

    def z(s: float, t: float) -> torch.Tensor:
        # the motion answers W(late) - W(early) for early < late; steps go down in sigma
        return -motion(t, s) / math.sqrt(s - t)

    return z


def reference_single_step(run: LoopRun, seed: int, eta: float, s_noise: float, r: float) -> torch.Tensor:
    """DPM-Solver++(2S) SDE: ancestral first-order steps to the intermediate level and to ``t``."""
    z = reference_noise(run.x, run.sigmas, seed)

    def ancestral(s: float, to: float) -> tuple[float, float]:
        up = min(to, eta * math.sqrt(to**2 * (s**2 - to**2) / s**2))
        return math.sqrt(to**2 - up**2), up

    x = run.x
    for i in range(run.steps):
        s, t = float(run.sigmas[i]), float(run.sigmas[i + 1])
        d = run.denoise(x, s)
        if t == 0:
            x = d
            continue
        # the intermediate level in float32: the motion resolves query times to 1e-6, so the
        # level must be the very number a float32 sampler computes to read the same point
        s32, t32 = run.sigmas[i], run.sigmas[i + 1]
        s1 = float(torch.exp(-(-torch.log(s32) + r * (torch.log(s32) - torch.log(t32)))))
        down, up = ancestral(s, s1)
        u = (down / s) * x + (1 - down / s) * d + z(s, s1) * (s_noise * up)
        d1 = run.denoise(u, s1)
        mixed = (1 - 1 / (2 * r)) * d + 1 / (2 * r) * d1
        down, up = ancestral(s, t)
        x = (down / s) * x + (1 - down / s) * mixed + z(s, t) * (s_noise * up)
    return x


def reference_multistep(run: LoopRun, seed: int, eta: float, s_noise: float, kind: str) -> torch.Tensor:
    """SDE-DPM-Solver++ multistep: first-order SDE step, plus the 2M (midpoint / heun) or 3M
    correction from the previous clean estimates (divided differences in lambda = -log sigma)."""
    z = reference_noise(run.x, run.sigmas, seed)
    x = run.x
    estimates: list[torch.Tensor] = []  # newest last
    hs: list[float] = []
    for i in range(run.steps):
        s, t = float(run.sigmas[i]), float(run.sigmas[i + 1])
        d = run.denoise(x, s)
        if t == 0:
            x = d
            continue
        h = math.log(s / t)
        g = (1 + eta) * h
        x = (t / s) * math.exp(-eta * h) * x + (1 - math.exp(-g)) * d
        phi2 = (math.exp(-g) - 1) / g + 1
        if kind == "3m" and len(estimates) >= 2:
            r0, r1 = hs[-1] / h, hs[-2] / h
            first_0 = (d - estimates[-1]) / r0
            first_1 = (estimates[-1] - estimates[-2]) / r1
            d1 = first_0 + (first_0 - first_1) * r0 / (r0 + r1)
            d2 = (first_0 - first_1) / (r0 + r1)
            x = x + phi2 * d1 - (phi2 / g - 0.5) * d2
        elif estimates:
            r = hs[-1] / h
            weight = 0.5 * (1 - math.exp(-g)) if kind == "midpoint" else phi2
            x = x + weight / r * (d - estimates[-1])
        x = x + z(s, t) * (t * math.sqrt(1 - math.exp(-2 * eta * h)) * s_noise)
        estimates.append(d)
        hs.append(h)
    return x


# -- running both on the tiny UNet ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def guider(model, positive, negative):
    g = Guider(model, 5.0)
    g.set_conds(positive, negative)
    model.prepare()
    return g


def loop_run(guider: Guider, sigmas: torch.Tensor, seed: int, batch: int = 2) -> LoopRun:
    shape = (batch, 4, 8, 8)
    return LoopRun(guider, sigmas, torch.zeros(shape), seeded_noise(shape, seed), None, seed, None, None)


def close(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """The largest difference, relative to the sample's scale (the random UNet's latents are large)."""
    return float((ours - reference).abs().max()) / max(1.0, float(reference.abs().max()))


CASES = [
    ("dpmpp_sde", DPMPPSDESampler(), lambda run, seed: reference_single_step(run, seed, 1.0, 1.0, 0.5)),
    (
        "SamplerDPMPP_SDE eta 0.7 s_noise 1.2 r 0.3",
        DPMPPSDESampler(0.7, 1.2, 0.3),
        lambda run, seed: reference_single_step(run, seed, 0.7, 1.2, 0.3),
    ),
    (
        "dpmpp_2m_sde",
        DPMPPMultistepSDESampler(2, "midpoint"),
        lambda run, seed: reference_multistep(run, seed, 1.0, 1.0, "midpoint"),
    ),
    (
        "dpmpp_2m_sde_heun",
        DPMPPMultistepSDESampler(2, "heun"),
        lambda run, seed: reference_multistep(run, seed, 1.0, 1.0, "heun"),
    ),
    (
        "SamplerDPMPP_2M_SDE heun eta 0.5 s_noise 0.8",
        DPMPPMultistepSDESampler(2, "heun", 0.5, 0.8),
        lambda run, seed: reference_multistep(run, seed, 0.5, 0.8, "heun"),
    ),
    (
        "dpmpp_3m_sde",
        DPMPPMultistepSDESampler(3, "heun"),
        lambda run, seed: reference_multistep(run, seed, 1.0, 1.0, "3m"),
    ),
]


@pytest.mark.parametrize("label, sampler, reference", CASES, ids=[c[0] for c in CASES])
def test_samplers_equal_the_papers_formulas_with_torchsdes_brownian_motion(guider, label, sampler, reference):
    failures = []
    with torch.inference_mode():
        for scheduler, steps, cut in (("karras", 8, None), ("exponential", 7, -3)):
            sigmas = compute_sigmas(guider.model.scheduler_config, scheduler, steps)
            sigmas = sigmas if cut is None else sigmas[:cut]  # also a schedule that stops above 0
            seed = 11 if cut is None else 2**40 + 3
            ours = sampler.sample_loop(loop_run(guider, sigmas, seed))[0]
            expected = reference(loop_run(guider, sigmas, seed), seed)
            if close(ours, expected) > 1e-5:
                failures.append(f"{scheduler} {len(sigmas) - 1} steps: {close(ours, expected):.3g}")
    assert not failures, f"{label}: " + "; ".join(failures)


def test_the_reference_can_tell_the_samplers_apart(guider):
    """The comparison above fails for a wrong formula or the wrong noise: each variant's
    reference is far from the other samplers' results and from Gaussian noise of the seed."""
    sigmas = compute_sigmas(guider.model.scheduler_config, "karras", 6)
    with torch.inference_mode():
        midpoint = reference_multistep(loop_run(guider, sigmas, 5), 5, 1.0, 1.0, "midpoint")
        heun = DPMPPMultistepSDESampler(2, "heun").sample_loop(loop_run(guider, sigmas, 5))[0]
        other_seed = DPMPPMultistepSDESampler(2, "midpoint").sample_loop(loop_run(guider, sigmas, 6))[0]
    assert close(heun, midpoint) > 1e-3
    assert close(other_seed, midpoint) > 1e-3


class ZeroDataRun:
    """A LoopRun stand-in for data that is the single point 0 (the clean estimate is 0 at every
    level): every exact SDE step then leaves the sample Gaussian with standard deviation the
    level it reached, so the sample's spread after each step reads the noise scaling."""

    def __init__(self, sigmas: torch.Tensor, seed: int) -> None:
        self.sigmas, self.seed, self.device = sigmas.float(), seed, torch.device("cpu")
        self.mask = None
        start = torch.randn((1, 4, 64, 64), generator=torch.Generator().manual_seed(seed))
        self.x = start * float(sigmas[0])
        self.spread: list[float] = []

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def denoise(self, x: torch.Tensor, sigma: object) -> torch.Tensor:
        return torch.zeros_like(x)

    def step_done(self, step: int, x: torch.Tensor, denoised: object = None) -> torch.Tensor:
        self.spread.append(float(x.std()))
        return x

    def finish(self, x: torch.Tensor, denoised: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, denoised


@pytest.mark.parametrize(
    "sampler",
    [
        DPMPPSDESampler(),
        DPMPPSDESampler(0.5, 1.0, 0.3),
        DPMPPMultistepSDESampler(2, "midpoint"),
        DPMPPMultistepSDESampler(2, "heun", 0.5),
        DPMPPMultistepSDESampler(3, "heun"),
    ],
    ids=repr,
)
def test_each_step_lands_on_its_noise_level(sampler):
    sigmas = compute_sigmas(default_scheduler_config("sd1", "epsilon"), "karras", 7)
    for schedule in (sigmas, sigmas[:-3]):
        run = ZeroDataRun(schedule, seed=5)
        sampler.sample_loop(run)
        for step, (got, asked) in enumerate(zip(run.spread, schedule[1:].tolist(), strict=True), start=1):
            assert got == pytest.approx(asked, rel=0.03, abs=1e-6), f"step {step}: spread {got}, sigma {asked}"


class _SpyGuider:
    """A GUIDER whose model predicts zero noise and keeps every input it is given (the UNet's)."""

    def __init__(self) -> None:
        self.model = types.SimpleNamespace(
            prediction_type="epsilon", scheduler_config=default_scheduler_config("sd1", "epsilon")
        )
        self.inputs: list[torch.Tensor] = []

    def predictor(self, shape: object, device: object) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        def predict(x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            self.inputs.append(x_in.clone())
            return torch.zeros_like(x_in)

        return predict


@pytest.mark.parametrize("sampler, calls", [(DPMPPSDESampler(), 7), (DPMPPMultistepSDESampler(3, "heun"), 4)], ids=repr)
def test_every_model_call_sees_the_kept_area_noised_to_its_sigma(sampler, calls):
    """ComfyUI's inpainting rule for the model's input (LoopRun.denoise masks every call), the
    run's first call (whose sample is noised by sqrt(1 + sigma^2) from the top level) and
    dpmpp_sde's intermediate calls included."""
    sigmas = compute_sigmas(default_scheduler_config("sd1", "epsilon"), "karras", 4)
    g = torch.Generator().manual_seed(8)
    latent, noise = torch.randn((1, 4, 64, 64), generator=g), torch.randn((1, 4, 64, 64), generator=g)
    mask = torch.zeros((1, 1, 64, 64))
    mask[..., 32:] = 1.0
    guider = _SpyGuider()
    run = LoopRun(guider, sigmas, latent, noise, mask, 2, None, None)
    levels: list[float] = []
    denoise = run.denoise
    run.denoise = lambda x, sigma: (levels.append(float(sigma)), denoise(x, sigma))[1]
    sampler.sample_loop(run)
    assert len(levels) == len(guider.inputs) == calls
    seen = [(x_in * math.sqrt(1 + sigma * sigma), sigma) for x_in, sigma in zip(guider.inputs, levels, strict=True)]
    for x, sigma in seen:
        kept = (latent + noise * sigma)[..., :32]
        assert torch.allclose(x[..., :32], kept, atol=1e-5), f"the call at sigma {sigma}"
    assert not torch.allclose(seen[1][0][..., 32:], (latent + noise * seen[1][1])[..., 32:])


# -- the Brownian tree ---------------------------------------------------------------------------------


def test_brownian_noise_is_one_path_whatever_the_steps():
    """The increments over two halves add up to the increment over the whole step, and the
    standardised noise is standard normal, for each image of a batch on its own."""
    like = torch.zeros(2, 4, 32, 32)
    sigmas = torch.tensor([14.6, 3.0, 0.5, 0.03, 0.0])
    noise = BrownianTreeNoise(like, sigmas, seed=3)
    a, b, c = (torch.tensor(v) for v in (14.6, 2.2, 0.4))
    whole = noise(a, c) * math.sqrt(14.6 - 0.4)
    halves = noise(a, b) * math.sqrt(14.6 - 2.2) + noise(b, c) * math.sqrt(2.2 - 0.4)
    assert torch.allclose(whole, halves, atol=1e-4)
    assert torch.equal(noise(a, b), BrownianTreeNoise(like, sigmas, seed=3)(a, b))  # no hidden state
    assert not torch.allclose(noise(a, b), BrownianTreeNoise(like, sigmas, seed=4)(a, b))
    step = noise(a, b)
    assert abs(float(step.mean())) < 0.05 and abs(float(step.std()) - 1) < 0.05
    assert torch.equal(-noise(b, a), step)  # going up in sigma is the same increment, reversed
    assert not torch.allclose(step[0], step[1])


# -- through the nodes -----------------------------------------------------------------------------------


def test_the_names_are_offered_in_comfyuis_order():
    assert set(NAMES) == set(COMFY_ORDER)
    assert not set(NAMES) & (set(UNSUPPORTED_SAMPLERS) | set(SAMPLERS))
    assert set(NAMES) <= set(LOOP_SAMPLERS)
    assert [n for n in SAMPLER_NAMES if n in NAMES] == list(COMFY_ORDER)
    assert isinstance(sn.KSamplerSelect().run("dpmpp_2m_sde_heun_gpu")[0], DPMPPMultistepSDESampler)
    for name in NAMES:
        assert named_sampler(name).noise_device == ("gpu" if name.endswith("_gpu") else "cpu")


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_same_seed_same_picture_other_seed_another(model, positive, negative, name):
    a = ksample(model, positive, negative, empty(2), seed=21, steps=4, sampler=name)["samples"]
    b = ksample(model, positive, negative, empty(2), seed=21, steps=4, sampler=name)["samples"]
    c = ksample(model, positive, negative, empty(2), seed=22, steps=4, sampler=name)["samples"]
    assert torch.equal(a, b)
    assert close(a, c) > 1e-3
    assert not torch.allclose(a[0], a[1])  # the images of a batch get different noise


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"])
def test_gpu_twin_equals_the_plain_sampler_on_the_cpu(model, positive, negative, name):
    plain = ksample(model, positive, negative, empty(2), seed=4, steps=4, sampler=name)["samples"]
    twin = ksample(model, positive, negative, empty(2), seed=4, steps=4, sampler=f"{name}_gpu")["samples"]
    assert torch.equal(plain, twin)


def _custom(model, positive, negative, sampler, seed: int, steps: int, add_noise: bool = True) -> torch.Tensor:
    sigmas = sn.BasicScheduler().run(model, "karras", steps, 1.0)[0]
    out = sn.SamplerCustom().run(model, add_noise, seed, 5.0, positive, negative, sampler, sigmas, empty(2))
    return first_latent(out)["samples"]


@pytest.mark.parametrize(
    "name, node",
    [
        ("dpmpp_sde", lambda: SamplerDPMPP_SDE().run(1.0, 1.0, 0.5, "cpu")[0]),
        ("dpmpp_sde_gpu", lambda: SamplerDPMPP_SDE().run(1.0, 1.0, 0.5, "gpu")[0]),
        ("dpmpp_2m_sde", lambda: SamplerDPMPP_2M_SDE().run("midpoint", 1.0, 1.0, "cpu")[0]),
        ("dpmpp_2m_sde_heun", lambda: SamplerDPMPP_2M_SDE().run("heun", 1.0, 1.0, "cpu")[0]),
        ("dpmpp_3m_sde_gpu", lambda: SamplerDPMPP_3M_SDE().run(1.0, 1.0, "gpu")[0]),
    ],
)
def test_sampler_custom_with_the_node_equals_ksampler(model, positive, negative, name, node):
    custom = _custom(model, positive, negative, node(), seed=9, steps=4)
    ksampler = ksample(model, positive, negative, empty(2), seed=9, steps=4, sampler=name)["samples"]
    assert torch.equal(custom, ksampler)


def test_node_settings_change_the_picture(model, positive, negative):
    base = _custom(model, positive, negative, SamplerDPMPP_SDE().run(1.0, 1.0, 0.5, "cpu")[0], seed=9, steps=3)
    for changed in (
        SamplerDPMPP_SDE().run(0.0, 1.0, 0.5, "cpu")[0],
        SamplerDPMPP_SDE().run(1.0, 0.5, 0.5, "cpu")[0],
        SamplerDPMPP_SDE().run(1.0, 1.0, 0.7, "cpu")[0],
    ):
        assert close(_custom(model, positive, negative, changed, seed=9, steps=3), base) > 1e-4
    # eta 0 is the ODE solver: the seed no longer matters (the starting noise aside)
    ode = SamplerDPMPP_3M_SDE().run(0.0, 1.0, "cpu")[0]
    one = _custom(model, positive, negative, ode, seed=9, steps=3, add_noise=False)
    other = _custom(model, positive, negative, ode, seed=10, steps=3, add_noise=False)
    assert torch.equal(one, other)
    noisy = SamplerDPMPP_3M_SDE().run(1.0, 1.0, "cpu")[0]
    assert close(_custom(model, positive, negative, noisy, seed=10, steps=3, add_noise=False), other) > 1e-4
    assert "r must be above 0" in str(SamplerDPMPP_SDE.validate(eta=1.0, s_noise=1.0, r=0.0, noise_device="cpu"))
    with pytest.raises(ValueError, match="r must be above 0"):
        DPMPPSDESampler(r=0.0)


def test_inpainting_mask_keeps_the_unmasked_latent(model, positive, negative):
    source = {"samples": torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(1))}
    mask = torch.zeros((2, 8, 8))
    mask[:, :, 4:] = 1.0
    for name in ("dpmpp_sde", "dpmpp_3m_sde"):
        out = ksample(model, positive, negative, {**source, "noise_mask": mask}, seed=3, steps=4, sampler=name)
        kept, painted = out["samples"][..., :4], out["samples"][..., 4:]
        assert torch.allclose(kept, source["samples"][..., :4], atol=1e-5)
        assert close(painted, source["samples"][..., 4:]) > 1e-2
