"""Inpainting with a LATENT's noise_mask as ComfyUI does it: at every model call (KSamplerX0Inpaint).

ComfyUI's rule (comfy/samplers.py, 0.8.0), restated: for a call at noise level ``s`` on the
sampler's sample ``x``, the model sees ``x * m + (latent + noise * s) * (1 - m)`` and the
sampler gets back ``D * m + latent * (1 - m)``; the sampler's own ``x`` is never overwritten. A
soft mask (values between 0 and 1) mixes both. The ``noise`` is the run's initial noise, except
for ``ddim``, which ComfyUI runs as Euler with fresh noise from ``seed + 1`` for the kept area.

The references below are k-diffusion's Euler, Euler ancestral and Heun written here, around
that rule, on the tiny UNet's plain (unmasked) denoiser; Weft's KSampler, SamplerCustom (loop
samplers) and the soft mask must give their latents.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.samplers import compute_sigmas
from nodes.samplers.ancestral import SamplerEulerAncestral
from nodes.samplers.multistep import LmsSampler
from tests.support.tiny_unet import ksample

SEED = 5
STEPS = 5
Denoiser = Callable[[torch.Tensor, float], torch.Tensor]


@pytest.fixture(scope="module")
def source() -> torch.Tensor:
    """A raw latent to inpaint."""
    return torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(3))


def soft_mask() -> torch.Tensor:
    """Left to right 0 .. 1 at latent size: kept, mixed, repainted columns."""
    return torch.linspace(0.0, 1.0, 8).expand(1, 8, 8).clone()


def sigmas_for(model, denoise: float) -> list[float]:
    """KSampler's schedule (karras) for ``denoise``: the tail of a longer one."""
    full = compute_sigmas(model.scheduler_config, "karras", int(STEPS / denoise))
    return [float(s) for s in full[-(STEPS + 1) :]]


def plain_denoiser(model, positive, negative, sigmas: list[float]) -> Denoiser:
    """The guided clean estimate at any (x, sigma), k-diffusion's space, no mask."""
    from nodes.diffusion.guidance import Guider
    from nodes.diffusion.loops import LoopRun

    guider = Guider(model, 5.0)
    guider.set_conds(positive, negative)
    zeros = torch.zeros((1, 4, 8, 8))
    run = LoopRun(guider, torch.tensor(sigmas), zeros, zeros, None, SEED, None, None)
    return run.denoise


def masked(denoise: Denoiser, latent: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor) -> Denoiser:
    """ComfyUI's per-call rule around a plain denoiser."""

    def call(x: torch.Tensor, sigma: float) -> torch.Tensor:
        x_in = x * mask + (latent + noise * sigma) * (1 - mask)
        return denoise(x_in, sigma) * mask + latent * (1 - mask)

    return call


def euler(denoise: Denoiser, x: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        x = x + (x - denoise(x, s)) / s * (s_next - s)
    return x


def heun(denoise: Denoiser, x: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        d = (x - denoise(x, s)) / s
        x_euler = x + d * (s_next - s)
        if s_next == 0:
            x = x_euler
        else:  # the second call, at s_next, is masked too
            x = x + (d + (x_euler - denoise(x_euler, s_next)) / s_next) / 2 * (s_next - s)
    return x


def euler_ancestral(denoise: Denoiser, x: torch.Tensor, sigmas: list[float], seed: int) -> torch.Tensor:
    """k-diffusion's, with ComfyUI's step noise: a CPU generator seeded ``seed + 1``."""
    generator = torch.Generator().manual_seed(seed + 1)
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        denoised = denoise(x, s)
        up = min(s_next, math.sqrt(s_next**2 * (s**2 - s_next**2) / s**2))
        down = math.sqrt(s_next**2 - up**2)
        if down == 0:
            x = denoised
        else:
            x = x + (x - denoised) / s * (down - s) + torch.randn(x.shape, generator=generator) * up
    return x


def reference(model, positive, negative, source, mask, sigmas, sampler: str, keep_noise_seed: int | None = None):
    """The reference run: KSampler's start (``latent + noise * sigma_0``; the scaled latent) and
    the per-call rule; returns the raw latent."""
    scale = 0.18215
    latent = source * scale
    noise = torch.randn(source.shape, generator=torch.Generator().manual_seed(SEED))  # the seed's noise
    keep = (
        noise
        if keep_noise_seed is None
        else torch.randn(source.shape, generator=torch.Generator().manual_seed(keep_noise_seed))
    )
    with torch.inference_mode():
        denoise = masked(plain_denoiser(model, positive, negative, sigmas), latent, keep, mask[:, None])
        x = latent + noise * sigmas[0]
        if sampler == "euler":
            x = euler(denoise, x, sigmas)
        elif sampler == "heun":
            x = heun(denoise, x, sigmas)
        else:
            x = euler_ancestral(denoise, x, sigmas, SEED)
    return x / scale


def with_mask(source: torch.Tensor, mask: torch.Tensor) -> dict:
    return {"samples": source.clone(), "noise_mask": mask}


def close(ours: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(ours, expected, rtol=0, atol=2e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("sampler", ["euler", "heun", "euler_ancestral"])
def test_ksampler_masks_every_call_with_a_soft_mask(tiny_model, tiny_positive, tiny_negative, source, sampler):
    """Deterministic, two-stage and ancestral samplers (diffusers steppers) at denoise 0.6."""
    mask = soft_mask()
    sigmas = sigmas_for(tiny_model, 0.6)
    expected = reference(tiny_model, tiny_positive, tiny_negative, source, mask, sigmas, sampler)
    ours = ksample(
        tiny_model,
        tiny_positive,
        tiny_negative,
        with_mask(source, mask),
        seed=SEED,
        steps=STEPS,
        sampler=sampler,
        denoise=0.6,
    )["samples"]
    close(ours, expected)


def test_masking_the_sample_after_each_step_is_another_picture(tiny_model, tiny_positive, tiny_negative, source):
    """What Weft did before: blend the sample with the noised source after every step (and the
    result at the end). With a soft mask that is far from ComfyUI's latent, so the test above
    tells the two apart."""
    mask = soft_mask()[:, None]
    sigmas = sigmas_for(tiny_model, 0.6)
    scale = 0.18215
    latent, noise = source * scale, torch.randn(source.shape, generator=torch.Generator().manual_seed(SEED))
    with torch.inference_mode():
        denoise = plain_denoiser(tiny_model, tiny_positive, tiny_negative, sigmas)
        x = latent + noise * sigmas[0]
        for s, s_next in zip(sigmas, sigmas[1:], strict=False):
            x = x + (x - denoise(x, s)) / s * (s_next - s)
            x = torch.lerp(latent + noise * s_next, x, mask)
    per_step = x / scale
    expected = reference(tiny_model, tiny_positive, tiny_negative, source, mask[:, 0], sigmas, "euler")
    assert float((per_step - expected).abs().max()) > 100 * 2e-5 * float(expected.abs().max())


@pytest.mark.parametrize("name", ["euler", "euler_ancestral"])
def test_loop_samplers_mask_every_call_too(tiny_model, tiny_positive, tiny_negative, source, name):
    """Samplers with a loop of their own (LmsSampler of order 1 is Euler; SamplerEulerAncestral)
    get the same per-call rule through SamplerCustom, from the top of the schedule."""
    mask = soft_mask()
    sigmas = [float(s) for s in compute_sigmas(tiny_model.scheduler_config, "karras", STEPS)]
    sampler = LmsSampler(1) if name == "euler" else SamplerEulerAncestral().run(1.0, 1.0)[0]
    ours = sn.SamplerCustom().run(
        tiny_model,
        True,
        SEED,
        5.0,
        tiny_positive,
        tiny_negative,
        sampler,
        torch.tensor(sigmas),
        with_mask(source, mask),
    )[0]["samples"]
    # from the top, KSampler's start is latent + noise * sqrt(1 + sigma_0^2) (ComfyUI's max_denoise)
    scale, noise = 0.18215, torch.randn(source.shape, generator=torch.Generator().manual_seed(SEED))
    with torch.inference_mode():
        denoise = masked(
            plain_denoiser(tiny_model, tiny_positive, tiny_negative, sigmas), source * scale, noise, mask[:, None]
        )
        x = source * scale + noise * math.sqrt(1 + sigmas[0] ** 2)
        x = euler(denoise, x, sigmas) if name == "euler" else euler_ancestral(denoise, x, sigmas, SEED)
    close(ours, x / scale)


def test_kept_area_is_the_source_exactly_and_repainted_area_changes(tiny_model, tiny_positive, tiny_negative, source):
    mask = soft_mask()
    out = ksample(tiny_model, tiny_positive, tiny_negative, with_mask(source, mask), seed=SEED, steps=STEPS)["samples"]
    # mask 0: the source (up to the round trip through the model's latent scaling)
    torch.testing.assert_close(out[..., 0], source[..., 0], rtol=1e-6, atol=1e-7)
    assert float((out[..., 7] - source[..., 7]).abs().mean()) > 0.01


def test_ddim_renoises_the_kept_area_with_fresh_noise(tiny_model, tiny_positive, tiny_negative, source):
    """ComfyUI's ddim is Euler whose kept area is noised with noise from seed + 1; without a mask
    it is Euler exactly."""
    mask = torch.zeros((1, 8, 8))
    mask[:, 2:6, 2:6] = 1.0
    sigmas = sigmas_for(tiny_model, 0.6)
    run = dict(seed=SEED, steps=STEPS, denoise=0.6)
    ddim = ksample(tiny_model, tiny_positive, tiny_negative, with_mask(source, mask), sampler="ddim", **run)["samples"]
    expected = reference(
        tiny_model, tiny_positive, tiny_negative, source, mask, sigmas, "euler", keep_noise_seed=SEED + 1
    )
    close(ddim, expected)
    as_euler = ksample(tiny_model, tiny_positive, tiny_negative, with_mask(source, mask), sampler="euler", **run)[
        "samples"
    ]
    assert float((ddim - as_euler)[..., 2:6, 2:6].abs().max()) > 1e-3  # the kept area's noise reaches the model
    plain = {"samples": source.clone()}
    torch.testing.assert_close(
        ksample(tiny_model, tiny_positive, tiny_negative, plain, sampler="ddim", **run)["samples"],
        ksample(tiny_model, tiny_positive, tiny_negative, plain, sampler="euler", **run)["samples"],
        rtol=0,
        atol=0,
    )
