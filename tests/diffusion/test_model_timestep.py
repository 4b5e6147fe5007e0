"""The UNet is called at ComfyUI's whole training timestep, not at the sigma's fractional one.

ComfyUI 0.8.0 calls SD1.x/SD2.x/SDXL (``ModelSamplingDiscrete.timestep``) at the training
timestep whose log sigma is nearest the call's sigma, a whole number (an equal distance goes to
the lower one, as ``argmin`` takes the first). Calling at the fractional timestep moves every
sampler's result about 1e-3 of the latent's scale from ComfyUI's after 8 steps. Here: the rule
itself, what a real (tiny) UNet and ControlNet receive from every kind of sampler, and a whole
run against a reference loop written from the rule.
"""

from __future__ import annotations

import math

import pytest
import torch

from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.samplers import model_sigmas
from nodes.diffusion.schedules import ModelSigmas, whole_timestep
from tests.support.comfy_timestep import comfy_timestep, comfy_timesteps

SEED, CFG, SCALE = 5, 5.0, 0.18215
#: fractional timesteps between training timesteps, none near a half step, rounding up and down
BETWEEN = (950.3, 801.7, 640.25, 512.6, 333.4, 170.8, 60.2, 7.3)


def training_sigmas() -> torch.Tensor:
    """The SD families' training noise (1000 "scaled_linear" betas from 0.00085 to 0.012), in
    float64, as ComfyUI computes it."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


def training_log_sigmas() -> torch.Tensor:
    return training_sigmas().log()


def sigma_at(t: float) -> float:
    """The sigma of a fractional training timestep: log sigma interpolated linearly."""
    log_sigmas = training_log_sigmas()
    low = math.floor(t)
    w = t - low
    return math.exp((1 - w) * float(log_sigmas[low]) + w * float(log_sigmas[min(low + 1, 999)]))


def test_the_training_sigmas_are_comfyuis_to_the_bit(tiny_model):
    """float32 values of the float64 sigmas and of their float64 logs: with other bits (diffusers'
    float32 table is up to 1.3e-5 off) about 4 in 10 sigmas on a half step would go the other way."""
    ms = model_sigmas(tiny_model.scheduler_config)
    assert torch.equal(ms.sigmas, training_sigmas().float())
    assert torch.equal(ms.log_sigmas, training_log_sigmas().float())


def test_the_rule_on_the_models_sigmas(tiny_model):
    ms = model_sigmas(tiny_model.scheduler_config)
    sigmas = [sigma_at(t) for t in BETWEEN]
    got = ms.model_timestep(torch.tensor(sigmas, dtype=torch.float32))
    assert got.dtype == torch.int64
    assert got.tolist() == [round(t) for t in BETWEEN]
    assert got.tolist() == [comfy_timestep(s, ms.log_sigmas) for s in sigmas]
    # the training sigmas themselves, and beyond either end
    exact = ms.sigmas[[0, 1, 499, 998, 999]]
    assert ms.model_timestep(exact).tolist() == [0, 1, 499, 998, 999]
    assert ms.model_timestep(torch.tensor([ms.sigma_max * 3, ms.sigma_min / 3])).tolist() == [999, 0]


def test_a_tie_goes_to_the_lower_timestep():
    """Training sigmas 1 and 4: sigma 2 is exactly between them in log sigma."""
    ms = ModelSigmas(1 / (1 + torch.tensor([1.0, 16.0], dtype=torch.float64)))
    assert ms.sigmas.tolist() == [1.0, 4.0]
    two = torch.tensor([2.0])
    assert ms.model_timestep(two).tolist() == [0]
    assert ms.model_timestep(torch.nextafter(two, torch.tensor(3.0))).tolist() == [1]
    assert whole_timestep(ms.call_timestep(two)).tolist() == [0.0]


def test_the_predictors_timestep_rounds_to_the_rule_and_carries_the_sigma(tiny_model):
    """What loops hand the predictor: whole_timestep of it is the rule's timestep (also on the
    half steps the normal and sgm_uniform schedules hit), and the sigma reads back from it."""
    ms = model_sigmas(tiny_model.scheduler_config)
    t = torch.cat([torch.arange(0, 999, 0.37), torch.arange(0.5, 999, 1.0)])
    sigmas = ms.t_to_sigma(t)
    carried = ms.call_timestep(sigmas)
    assert torch.equal(whole_timestep(carried), comfy_timesteps(sigmas, ms.log_sigmas).float())
    torch.testing.assert_close(ms.t_to_sigma(carried), sigmas, rtol=2e-6, atol=0)
    assert not torch.equal(carried, carried.round())


# -- what the UNet receives ------------------------------------------------------------------------
def dpm_2_calls(sigmas: list[float]) -> list[float]:
    calls = []
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        calls += [s, math.sqrt(s * s_next)] if s_next > 0 else [s]
    return calls


def heun_calls(sigmas: list[float]) -> list[float]:
    calls = []
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        calls += [s, s_next] if s_next > 0 else [s]
    return calls


CALL_SIGMAS = {
    "euler": lambda sigmas: sigmas[:-1],  # a diffusers scheduler
    "heun": heun_calls,  # a diffusers scheduler, two calls a step
    "dpm_2": dpm_2_calls,  # Weft's own stepper, at log midpoints
    "dpmpp_2m": lambda sigmas: sigmas[:-1],  # Weft's own stepper
    "dpmpp_2m_sde": lambda sigmas: sigmas[:-1],  # a sampler with a loop of its own
}


@pytest.fixture
def recorded(tiny_model):
    """Every timestep the tiny UNet module itself receives."""
    unet = tiny_model.prepare()
    seen: list[torch.Tensor] = []
    forward = unet.forward

    def recording(sample, timestep, *args, **kwargs):
        seen.append(timestep.detach().cpu().clone())
        return forward(sample, timestep, *args, **kwargs)

    unet.forward = recording
    try:
        yield seen
    finally:
        del unet.forward  # the class's forward again


@pytest.mark.parametrize("name", CALL_SIGMAS)
def test_the_unet_gets_the_whole_timestep_of_each_call(tiny_model, tiny_positive, tiny_negative, recorded, name):
    sigmas = [sigma_at(t) for t in BETWEEN] + [0.0]
    sampler = sn.KSamplerSelect().run(name)[0]
    latent = {"samples": torch.zeros((1, 4, 8, 8))}
    sn.SamplerCustom().run(
        tiny_model, True, SEED, CFG, tiny_positive, tiny_negative, sampler, torch.tensor(sigmas), latent
    )
    log_sigmas = model_sigmas(tiny_model.scheduler_config).log_sigmas
    expected = [comfy_timestep(s, log_sigmas) for s in CALL_SIGMAS[name](sigmas)]
    assert len(recorded) == len(expected)
    for got, want in zip(recorded, expected, strict=True):
        assert got.dtype == torch.float32 and got.shape == (2,)  # uncond and cond in one batch
        assert got.tolist() == [float(want)] * 2


# -- a whole run ---------------------------------------------------------------------------------
def reference_euler(model, positive, negative, sigmas: list[float], whole: bool) -> torch.Tensor:
    """KSampler's Euler from empty latent, written out: the UNet called directly at the rule's
    timestep (``whole``) or at the sigma's fractional one."""
    unet = model.prepare()
    log_sigmas = training_log_sigmas()
    cond = torch.cat([negative[0][0], positive[0][0]])
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(SEED))
    x = noise * math.sqrt(1 + sigmas[0] ** 2)
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        log_s = math.log(s)
        if whole:
            t = float(comfy_timestep(s, log_sigmas))
        else:
            low = min(int(torch.searchsorted(log_sigmas, torch.tensor(log_s, dtype=torch.float64))) - 1, 998)
            t = low + (log_s - float(log_sigmas[low])) / float(log_sigmas[low + 1] - log_sigmas[low])
        x_in = x / math.sqrt(1 + s * s)
        with torch.no_grad():
            out = unet(torch.cat([x_in, x_in]), torch.tensor([t, t]), encoder_hidden_states=cond).sample
        uncond, conditioned = out.chunk(2)
        denoised = x - s * (uncond + CFG * (conditioned - uncond))
        x = x + (x - denoised) / s * (s_next - s)
    return x / SCALE


def test_ksampler_matches_a_loop_at_the_rules_timesteps(tiny_model, tiny_positive, tiny_negative):
    from nodes.diffusion.samplers import denoise_sigmas

    steps = 8
    sigmas = [float(s) for s in denoise_sigmas(tiny_model.scheduler_config, "karras", steps, 1.0)]
    latent = {"samples": torch.zeros((1, 4, 8, 8))}
    out = sn.KSampler().run(tiny_model, SEED, steps, CFG, "euler", "karras", tiny_positive, tiny_negative, latent, 1.0)
    ours = (out.outputs if hasattr(out, "outputs") else out)[0]["samples"]
    right = reference_euler(tiny_model, tiny_positive, tiny_negative, sigmas, whole=True)
    wrong = reference_euler(tiny_model, tiny_positive, tiny_negative, sigmas, whole=False)
    scale = float(right.abs().max())
    assert float((ours - right).abs().max()) <= 1e-4 * scale
    assert float((ours - wrong).abs().max()) > 3e-4 * scale  # the fractional timestep is told apart
