"""Differential Diffusion on the tiny UNet: the mask value sets how much of the schedule a pixel
is repainted for (Levin & Fried), through the loop's denoise_mask_function hook."""

from __future__ import annotations

import torch

from nodes.diffusion.latent import SetLatentNoiseMask
from nodes.model_patches.differential_diffusion import DifferentialDiffusion, DifferentialMask
from tests.support.tiny_unet import ksample


def _latent() -> dict:
    g = torch.Generator().manual_seed(5)
    return {"samples": torch.randn((1, 4, 8, 8), generator=g)}


def _ramp() -> torch.Tensor:
    """Zero on the left half, then rising 0 -> 1 to the right edge (image size): a soft edit."""
    row = torch.cat([torch.zeros(32), torch.linspace(0, 1, 32)])
    return row.repeat(64, 1)[None]


def test_the_threshold_falls_from_one_to_zero_over_the_schedule(tiny_model):
    from nodes.diffusion.samplers import compute_sigmas

    sigmas = compute_sigmas(tiny_model.scheduler_config, "normal", 10)
    mask = torch.linspace(0, 1, 11)[None, None, None]
    fn = DifferentialMask()
    first = fn(sigmas[:1], mask, {"model": tiny_model, "sigmas": sigmas})
    last = fn(sigmas[-2:-1], mask, {"model": tiny_model, "sigmas": sigmas})
    assert first.sum() == 1  # at the start only the fully masked pixel takes part
    assert last.sum() >= 10  # near the end nearly every pixel does
    half = fn(torch.tensor([float(sigmas[5])]), mask, {"model": tiny_model, "sigmas": sigmas})
    assert 1 < half.sum() < 10 and torch.equal(half, (half > 0).float())  # binary, growing
    soft = DifferentialMask(0.5)(sigmas[:1], mask, {"model": tiny_model, "sigmas": sigmas})
    torch.testing.assert_close(soft, 0.5 * first + 0.5 * mask)


def test_the_threshold_counts_whole_timesteps_as_comfyui(tiny_model):
    """ComfyUI's node measures the schedule in ``ModelSamplingDiscrete.timestep``: the whole
    training timestep nearest each sigma in log sigma, not the fractional one."""
    from nodes.diffusion.samplers import model_sigmas
    from tests.support.comfy_timestep import comfy_timestep

    ms = model_sigmas(tiny_model.scheduler_config)
    sigmas = torch.cat([ms.t_to_sigma(torch.tensor([999.0, 700.0, 500.4, 200.0])), torch.zeros(1)])
    now = sigmas[2:3]  # between timesteps 500 and 501
    start, end, current = (comfy_timestep(float(s), ms.log_sigmas) for s in (sigmas[0], ms.sigma_min, now))
    assert (start, end, current) == (999, 0, 500)
    threshold = (current - end) / (start - end)
    mask = torch.tensor([threshold - 1e-4, threshold + 1e-4, 500.4 / 999 + 1e-4])[None, None, None]
    got = DifferentialMask()(now, mask, {"model": tiny_model, "sigmas": sigmas})
    assert got.flatten().tolist() == [0.0, 1.0, 1.0]


def test_a_soft_mask_changes_pixels_in_proportion_to_their_value(tiny_model, tiny_positive, tiny_negative):
    latent = _latent()
    masked = SetLatentNoiseMask().run(latent, _ramp())[0]
    (patched,) = DifferentialDiffusion().run(tiny_model, 1.0)
    plain = ksample(tiny_model, tiny_positive, tiny_negative, masked, steps=10, denoise=0.8)["samples"]
    soft = ksample(patched, tiny_positive, tiny_negative, masked, steps=10, denoise=0.8)["samples"]
    change = (soft - latent["samples"]).abs().mean(dim=(0, 1, 2))  # per latent column, left to right
    # mask 0 takes part in the last step only (its threshold reaches 0 there, as in ComfyUI)
    assert change[:4].max() < 0.2 * change[5]
    assert change[4] < change[5] < change[6] < change[7]  # more change where the mask is higher
    assert not torch.allclose(plain, soft)  # plain inpainting blends the soft mask differently


def test_a_full_mask_is_plain_inpainting(tiny_model, tiny_positive, tiny_negative):
    latent = _latent()
    mask = torch.ones((1, 64, 64))
    masked = SetLatentNoiseMask().run(latent, mask)[0]
    (patched,) = DifferentialDiffusion().run(tiny_model, 1.0)
    plain = ksample(tiny_model, tiny_positive, tiny_negative, masked, steps=6)["samples"]
    differential = ksample(patched, tiny_positive, tiny_negative, masked, steps=6)["samples"]
    torch.testing.assert_close(differential, plain)
