"""dpm_2, dpm_2_ancestral and dpmpp_2m as ComfyUI 0.8.0 runs them (issue 11), against the published
algorithms written here.

* DPM2: Karras et al. 2022 (arXiv 2206.00364), Algorithm 2 with DPM-Solver-2's midpoint (Lu et al.
  2022, arXiv 2206.00927), as k-diffusion's ``sample_dpm_2`` writes it: an Euler step to the
  log-midpoint of sigma and sigma', the model there, the full step with the midpoint's derivative;
  a step to 0 is an Euler step. The ancestral variant steps down to sigma_down and adds sigma_up of
  fresh noise (``get_ancestral_step``, eta 1), drawn as ComfyUI's ``default_noise_sampler`` does
  (a CPU generator seeded with seed + 1, one draw per step, none in the step to 0).
* DPM-Solver++(2M): Lu et al. 2022 (arXiv 2211.01095), Algorithm 2 in lambda = -log(sigma): first
  order on the first step and in the step to 0, else ``(1 + 1/2r) D_i - (1/2r) D_(i-1)``.

KSampler's rules are written here too: the schedule (``dpm_2`` and ``dpm_2_ancestral`` compute one
step more and drop the last nonzero sigma; denoise < 1 takes the tail of a longer schedule), the
start (``latent + noise * sigma_0``, ``sqrt(1 + sigma_0^2)`` from the model's top level) and
inpainting at every model call (the model sees the source latent noised to the call's sigma where
the mask is 0 and gets it back as the clean estimate). The denoiser is the tiny UNet's noise
prediction for each conditioning in its own call, at ComfyUI's whole timestep (the training
timestep nearest the call's sigma in log sigma, ``tests/support/comfy_timestep.py``), combined
by CFG, so neither Weft's guider nor its loop is part of the reference. Tolerance: 1e-4 of the latent's scale (the issue's); float32
rounding is about 1e-6 of it.
"""

from __future__ import annotations

import math

import pytest
import torch

from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.samplers import DISCARD_PENULTIMATE_SIGMA_SAMPLERS, SAMPLERS, compute_sigmas, model_sigmas
from nodes.diffusion.schedules import whole_timestep
from tests.support.comfy_timestep import comfy_timestep
from tests.support.tiny_unet import ksample

NAMES = ("dpm_2", "dpm_2_ancestral", "dpmpp_2m")
SCHEDULERS = ("normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta")
SEED, CFG, SCALE = 7, 5.0, 0.18215


class Denoiser:
    """The guided clean estimate in k-diffusion's space (``x = x0 + sigma * eps``), the tiny UNet
    called at ComfyUI's whole timestep (``fractional_t``: at the sigma's fractional one, as Weft
    called it before)."""

    def __init__(self, model, positive, negative, fractional_t: bool = False) -> None:
        self.unet, self.fractional_t = model.prepare(), fractional_t
        self.cond, self.uncond = positive[0][0], negative[0][0]
        self.ms = model_sigmas(model.scheduler_config)

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        x_in = x / math.sqrt(1 + sigma * sigma)
        if self.fractional_t:
            t = float(self.ms.sigma_to_t(torch.tensor(sigma, dtype=torch.float32)))
        else:
            t = float(comfy_timestep(sigma, self.ms.log_sigmas))
        batch = x.shape[0]
        timesteps = torch.full((batch,), t)

        def eps(text: torch.Tensor) -> torch.Tensor:
            return self.unet(x_in, timesteps, encoder_hidden_states=text.expand(batch, -1, -1)).sample

        cond, uncond = x - sigma * eps(self.cond), x - sigma * eps(self.uncond)
        return uncond + (cond - uncond) * CFG


def ancestral_step(sigma: float, sigma_next: float) -> tuple[float, float]:
    """(sigma_down, sigma_up) of an ancestral step with eta 1: DDPM's posterior noise."""
    if sigma_next == 0:
        return 0.0, 0.0
    up = min(sigma_next, math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - up**2), up


# -- the published rules -------------------------------------------------------------------------
def ref_dpm_2(den, x, sigmas, noise, ancestral=False, midpoint="log"):
    """DPM2; ``midpoint="linear"`` is a plausible mistake the tolerance must catch."""
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        denoised = den(x, s)
        down, up = ancestral_step(s, s_next) if ancestral else (s_next, 0.0)
        d = (x - denoised) / s
        if down == 0:
            x = x + d * (down - s)
            continue
        mid = math.exp((math.log(s) + math.log(down)) / 2) if midpoint == "log" else (s + down) / 2
        x_mid = x + d * (mid - s)
        d_mid = (x_mid - den(x_mid, mid)) / mid
        x = x + d_mid * (down - s)
        if ancestral:
            x = x + noise() * up
    return x


def ref_dpm_2_ancestral(den, x, sigmas, noise):
    return ref_dpm_2(den, x, sigmas, noise, ancestral=True)


def ref_dpmpp_2m(den, x, sigmas, noise, first_order_penultimate=False):
    """DPM-Solver++(2M) with the data prediction (signal scale 1: ``x_i = (sigma_i / sigma_(i-1)) x -
    (e^-h - 1) D``). ``first_order_penultimate``: diffusers' lower_order_final for short runs,
    which Weft's dpmpp_2m used to take and ComfyUI's does not."""
    lam = [-math.log(s) if s > 0 else math.inf for s in sigmas]
    previous = None
    for i, (s, s_next) in enumerate(zip(sigmas, sigmas[1:], strict=False)):
        denoised = den(x, s)
        if s_next == 0:
            x = denoised
        else:
            h = lam[i + 1] - lam[i]
            estimate = denoised
            second_order = previous is not None and not (first_order_penultimate and i == len(sigmas) - 3)
            if second_order:
                r = (lam[i] - lam[i - 1]) / h
                estimate = denoised * (1 + 1 / (2 * r)) - previous * (1 / (2 * r))
            x = x * (s_next / s) - estimate * math.expm1(-h)
        previous = denoised
    return x


REFERENCES = {"dpm_2": ref_dpm_2, "dpm_2_ancestral": ref_dpm_2_ancestral, "dpmpp_2m": ref_dpmpp_2m}


# -- KSampler's rules around them -----------------------------------------------------------------
def ksampler_sigmas(model, name: str, scheduler: str, steps: int, denoise: float) -> list[float]:
    """ComfyUI's ``KSampler.set_steps`` / ``calculate_sigmas`` for these samplers (the whole
    schedule at denoise 1, which ddim_uniform may make one step longer than asked)."""
    count = steps if denoise > 0.9999 else int(steps / denoise)
    if name in DISCARD_PENULTIMATE_SIGMA_SAMPLERS:
        longer = [float(s) for s in compute_sigmas(model.scheduler_config, scheduler, count + 1)]
        sigmas = longer[:-2] + longer[-1:]
    else:
        sigmas = [float(s) for s in compute_sigmas(model.scheduler_config, scheduler, count)]
    return sigmas if denoise > 0.9999 else sigmas[-(steps + 1) :]


def reference(model, positive, negative, name, sigmas, source, mask=None, seed=SEED, **variant) -> torch.Tensor:
    """The raw latent ComfyUI's KSampler gives: its start, per-call inpainting and step noise."""
    latent = source * SCALE
    noise = torch.randn(source.shape, generator=torch.Generator().manual_seed(seed))  # the seed's noise
    top = model_sigmas(model.scheduler_config).sigma_max
    s0 = sigmas[0]
    x = latent + noise * (math.sqrt(1 + s0 * s0) if math.isclose(s0, top, rel_tol=1e-5) else s0)
    den = Denoiser(model, positive, negative, fractional_t=variant.pop("fractional_t", False))
    if mask is not None:
        plain, m = den, mask[:, None]

        def den(x_, s):
            return plain(x_ * m + (latent + noise * s) * (1 - m), s) * m + latent * (1 - m)

    generator = torch.Generator().manual_seed(variant.pop("noise_seed", seed + 1))

    def step_noise() -> torch.Tensor:
        return torch.randn(x.shape, generator=generator)

    with torch.inference_mode():
        return REFERENCES[name](den, x, sigmas, step_noise, **variant) / SCALE


def assert_matches(ours: torch.Tensor, expected: torch.Tensor, rel: float = 1e-4) -> None:
    torch.testing.assert_close(ours, expected, rtol=0, atol=rel * float(expected.abs().max()))


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / float(b.abs().max())


@pytest.fixture(scope="module")
def source() -> torch.Tensor:
    """Raw latents to start img2img and inpainting from."""
    return torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(3))


def run_ksampler(model, positive, negative, name, scheduler, steps, denoise, latent) -> torch.Tensor:
    return ksample(
        model,
        positive,
        negative,
        latent,
        seed=SEED,
        steps=steps,
        cfg=CFG,
        sampler=name,
        scheduler=scheduler,
        denoise=denoise,
    )["samples"]


# -- the samplers against the rules ----------------------------------------------------------------
@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("name", NAMES)
def test_ksampler_txt2img_is_the_published_rule(tiny_model, tiny_positive, tiny_negative, name, scheduler):
    zeros = torch.zeros((1, 4, 8, 8))
    ours = run_ksampler(tiny_model, tiny_positive, tiny_negative, name, scheduler, 6, 1.0, {"samples": zeros})
    sigmas = ksampler_sigmas(tiny_model, name, scheduler, 6, 1.0)
    assert_matches(ours, reference(tiny_model, tiny_positive, tiny_negative, name, sigmas, zeros))


CASES = {
    # (scheduler, steps, denoise, batch, mask)
    "img2img batch 2": ("karras", 6, 0.6, 2, None),
    "img2img 3 steps": ("simple", 3, 0.5, 1, None),
    "0/1 mask batch 2": ("normal", 5, 0.7, 2, "box"),
    "soft mask from the top": ("exponential", 5, 1.0, 1, "soft"),
}


def make_mask(kind: str | None, batch: int) -> torch.Tensor | None:
    if kind is None:
        return None
    if kind == "box":
        mask = torch.zeros((batch, 8, 8))
        mask[:, 2:6, 3:7] = 1.0
        return mask
    return torch.linspace(0.0, 1.0, 8).expand(batch, 8, 8).clone()  # kept, mixed, repainted columns


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("name", NAMES)
def test_ksampler_img2img_batches_and_masks(tiny_model, tiny_positive, tiny_negative, source, name, case):
    scheduler, steps, denoise, batch, mask_kind = case
    latent, mask = {"samples": source[:batch].clone()}, make_mask(mask_kind, batch)
    if mask is not None:
        latent["noise_mask"] = mask
    ours = run_ksampler(tiny_model, tiny_positive, tiny_negative, name, scheduler, steps, denoise, latent)
    sigmas = ksampler_sigmas(tiny_model, name, scheduler, steps, denoise)
    expected = reference(tiny_model, tiny_positive, tiny_negative, name, sigmas, source[:batch], mask)
    assert_matches(ours, expected)


@pytest.mark.parametrize("name", NAMES)
def test_a_schedule_stopping_above_zero(tiny_model, tiny_positive, tiny_negative, source, name):
    """SamplerCustom with a schedule that leaves noise in (KSamplerAdvanced's leftover noise): the
    steps run as given, no discarded sigma, no final step to 0."""
    sigmas = [float(s) for s in compute_sigmas(tiny_model.scheduler_config, "karras", 8)[:-3]]
    sampler = sn.KSamplerSelect().run(name)[0]
    ours = sn.SamplerCustom().run(
        tiny_model,
        True,
        SEED,
        CFG,
        tiny_positive,
        tiny_negative,
        sampler,
        torch.tensor(sigmas),
        {"samples": source.clone()},
    )[0]["samples"]
    assert_matches(ours, reference(tiny_model, tiny_positive, tiny_negative, name, sigmas, source))


# -- the tolerance catches what these samplers were and plausible mistakes ------------------------
MISTAKES = {
    "dpm_2 at the sigmas' fractional timesteps": ("dpm_2", {"fractional_t": True}),
    "dpm_2 with the linear midpoint": ("dpm_2", {"midpoint": "linear"}),
    "dpm_2_ancestral with the seed's own generator": ("dpm_2_ancestral", {"noise_seed": SEED}),
    "dpmpp_2m at the sigmas' fractional timesteps": ("dpmpp_2m", {"fractional_t": True}),
    "dpmpp_2m with a first-order penultimate step": ("dpmpp_2m", {"first_order_penultimate": True}),
}


@pytest.mark.parametrize("mistake", MISTAKES.values(), ids=MISTAKES.keys())
def test_the_tolerance_tells_mistakes_apart(tiny_model, tiny_positive, tiny_negative, mistake):
    name, variant = mistake
    zeros = torch.zeros((1, 4, 8, 8))
    sigmas = ksampler_sigmas(tiny_model, name, "karras", 6, 1.0)
    right = reference(tiny_model, tiny_positive, tiny_negative, name, sigmas, zeros)
    wrong = reference(tiny_model, tiny_positive, tiny_negative, name, sigmas, zeros, **variant)
    assert gap(wrong, right) > 3e-4


def test_the_three_are_different_samplers(tiny_model, tiny_positive, tiny_negative):
    zeros = {"samples": torch.zeros((1, 4, 8, 8))}
    results = [run_ksampler(tiny_model, tiny_positive, tiny_negative, n, "karras", 6, 1.0, zeros) for n in NAMES]
    for i in range(len(NAMES)):
        for j in range(i + 1, len(NAMES)):
            assert gap(results[i], results[j]) > 1e-3, (NAMES[i], NAMES[j])


@pytest.mark.parametrize("name", ["dpm_2", "dpm_2_ancestral"])
def test_dpm2_calls_the_model_at_the_exact_log_midpoints(tiny_model, name):
    """Two calls a step, the second at sqrt(sigma * target) (target: sigma' or sigma_down), one in
    the step to 0; the UNet is called at each one's whole timestep by ComfyUI's rule, and the
    timestep the predictor gets carries the exact sigma."""
    sigmas = ksampler_sigmas(tiny_model, name, "karras", 5, 1.0)
    stepper = SAMPLERS[name].stepper(tiny_model.scheduler_config, torch.tensor(sigmas), SEED)
    expected = []
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        target = ancestral_step(s, s_next)[0] if name == "dpm_2_ancestral" else s_next
        expected += [s, math.sqrt(s * target)] if target > 0 else [s]
    assert stepper.calls == len(expected) == 2 * len(sigmas) - 3
    assert stepper.call_sigmas == pytest.approx(expected, rel=1e-6)
    ms = model_sigmas(tiny_model.scheduler_config)
    whole = [float(comfy_timestep(s, ms.log_sigmas)) for s in expected]
    assert whole_timestep(stepper.timesteps).tolist() == whole
    torch.testing.assert_close(ms.t_to_sigma(stepper.timesteps), torch.tensor(expected), rtol=2e-6, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_a_repeated_sigma_is_no_step(tiny_model, tiny_positive, tiny_negative, source, name):
    """A zero-length step leaves the sample as it is (ComfyUI's dpmpp_2m divides by 0 on the step
    after one); for DPM2 the run equals the one without the repeat."""
    sigmas = [float(s) for s in compute_sigmas(tiny_model.scheduler_config, "karras", 5)]
    repeated = sigmas[:3] + sigmas[2:]

    def run(schedule: list[float]) -> torch.Tensor:
        sampler = sn.KSamplerSelect().run(name)[0]
        latent = {"samples": source[:1].clone()}
        node = sn.SamplerCustom()
        return node.run(
            tiny_model, True, SEED, CFG, tiny_positive, tiny_negative, sampler, torch.tensor(schedule), latent
        )[0]["samples"]

    ours = run(repeated)
    assert torch.isfinite(ours).all()
    if name == "dpm_2":
        assert_matches(ours, run(sigmas), rel=1e-6)
