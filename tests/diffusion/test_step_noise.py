"""The noise ancestral samplers add at each step: ComfyUI's generator, seeding and order.

ComfyUI 0.8.0 (comfy/k_diffusion/sampling.py, ``default_noise_sampler``) draws each step's
noise with ``torch.randn(x.size(), generator=g)`` from a generator on the sample's device,
seeded with the sampler's seed plus one on the CPU. Each test here runs the published loop of
one sampler (k-diffusion's, as ComfyUI has it) with that noise rule on Weft's own denoiser, and
Weft's sampler must give the same latent: the same seed, the same picture as ComfyUI.
"""

from __future__ import annotations

import math

import pytest
import torch

from nodes.diffusion.guidance import Guider
from nodes.diffusion.noise import RandomNoiseSource, step_noise_generator
from nodes.diffusion.samplers import SAMPLERS, compute_sigmas
from nodes.diffusion.sampling import sample
from tests.support.tiny_unet import conditioning, empty

SEED = 11


def comfy_noise_sampler(x: torch.Tensor, seed: int):
    """ComfyUI's ``default_noise_sampler`` rule, written out."""
    generator = torch.Generator(device=x.device)
    generator.manual_seed(seed + 1 if x.device.type == "cpu" else seed)
    return lambda: torch.randn(x.size(), dtype=x.dtype, layout=x.layout, device=x.device, generator=generator)


def ancestral_step(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """k-diffusion's ``get_ancestral_step``: how far down deterministically, how much noise up."""
    if not sigma_next:
        return 0.0, 0.0
    up = min(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5)
    return (sigma_next**2 - up**2) ** 0.5, up


class PublishedLoop:
    """A SAMPLER with its own loop: one of k-diffusion's, with ComfyUI's step noise."""

    def __init__(self, name: str, seed: int) -> None:
        self.name, self.seed = name, seed

    def sample_loop(self, run):
        x = run.x
        noise = comfy_noise_sampler(x, self.seed)
        sigmas = [float(s) for s in run.sigmas]
        for i in range(run.steps):
            s, s_next = sigmas[i], sigmas[i + 1]
            denoised = run.denoise(x, s)
            x = getattr(self, self.name)(x, denoised, s, s_next, noise)
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)

    @staticmethod
    def euler_ancestral(x, denoised, s, s_next, noise):
        down, up = ancestral_step(s, s_next)
        if down == 0:
            return denoised
        return x + (x - denoised) / s * (down - s) + noise() * up

    @staticmethod
    def lcm(x, denoised, s, s_next, noise):
        return denoised + noise() * s_next if s_next > 0 else denoised

    @staticmethod
    def ddpm(x, denoised, s, s_next, noise):
        # ComfyUI's DDPMSampler_step on x scaled to VP, then back to VE
        eps = (x - denoised) / s
        x_vp = x / math.sqrt(1.0 + s * s)
        abar, abar_prev = 1 / (s * s + 1), 1 / (s_next * s_next + 1)
        alpha = abar / abar_prev
        mu = (1.0 / alpha) ** 0.5 * (x_vp - (1 - alpha) * eps / (1 - abar) ** 0.5)
        if s_next > 0:
            mu = mu + ((1 - alpha) * (1.0 - abar_prev) / (1.0 - abar)) ** 0.5 * noise()
            mu = mu * math.sqrt(1.0 + s_next * s_next)
        return mu


@pytest.fixture(scope="module")
def guider(tiny_model):
    guider = Guider(tiny_model, 5.0)
    guider.set_conds(conditioning(1), conditioning(2))
    return guider


@pytest.mark.parametrize("name", ["euler_ancestral", "lcm", "ddpm"])
def test_step_noise_is_comfyuis(tiny_model, guider, name):
    sigmas = compute_sigmas(tiny_model.scheduler_config, "karras", 6)
    latent = empty()
    noise = RandomNoiseSource(SEED).generate_noise(latent)
    published = sample(guider, PublishedLoop(name, SEED), sigmas, noise, latent["samples"], seed=SEED)
    weft = sample(guider, SAMPLERS[name], sigmas, noise, latent["samples"], seed=SEED)
    torch.testing.assert_close(weft.samples, published.samples, rtol=1e-4, atol=1e-4)
    # and the seeding matters: the seed itself (Weft's old rule) gives another picture
    shifted = sample(guider, PublishedLoop(name, SEED - 1), sigmas, noise, latent["samples"], seed=SEED)
    assert (shifted.samples - weft.samples).abs().max() > 1e-2


def test_the_generator_follows_the_device_rule():
    cpu = step_noise_generator(5, "cpu")
    assert torch.equal(torch.randn(3, generator=cpu), torch.randn(3, generator=torch.Generator().manual_seed(6)))
    assert step_noise_generator(None, "cpu") is None
    top = step_noise_generator(2**64 - 1, "cpu")  # the largest seed wraps instead of failing
    assert torch.equal(torch.randn(2, generator=top), torch.randn(2, generator=torch.Generator().manual_seed(0)))
