"""A LATENT's ``noise_mask`` survives samplers and latent upscales, as in ComfyUI (whose
``common_ksampler``, SamplerCustom(Advanced), LatentUpscale and LatentUpscaleBy all return
``latent.copy()`` with new samples): a chained inpainting pass repaints only the masked area.

The mask is not resized by the upscale nodes; samplers resize it to the latent they sample
(bilinear, as ComfyUI's ``reshape_mask``)."""

from __future__ import annotations

from typing import Any

import torch

from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.latent import LatentUpscale, LatentUpscaleBy, SetLatentNoiseMask
from tests.support.tiny_unet import ksample


def masked_source(seed: int = 6) -> dict:
    """An 8x8 latent (64x64 pixels) whose noise mask covers pixels 16..48 (latent 2..6)."""
    g = torch.Generator().manual_seed(seed)
    source = {"samples": torch.randn((1, 4, 8, 8), generator=g)}
    mask = torch.zeros((1, 64, 64))
    mask[:, 16:48, 16:48] = 1.0
    return SetLatentNoiseMask().run(source, mask)[0]


def outside(x: torch.Tensor, border: int) -> torch.Tensor:
    """The latent cells a ``border`` wide around the edge (where the mask is 0)."""
    keep = torch.ones(x.shape[-2:], dtype=torch.bool)
    keep[border:-border, border:-border] = False
    return x[..., keep]


def test_ksampler_keeps_the_noise_mask(tiny_model: Any, tiny_positive: Any, tiny_negative: Any) -> None:
    latent = masked_source()
    out = ksample(tiny_model, tiny_positive, tiny_negative, latent, steps=2)
    assert out["noise_mask"] is latent["noise_mask"]
    advanced = sn.KSamplerAdvanced().run(
        tiny_model, "enable", 1, 2, 5.0, "euler", "karras", tiny_positive, tiny_negative, latent, 0, 10000, "disable"
    )
    assert (advanced.outputs if hasattr(advanced, "outputs") else advanced)[0]["noise_mask"] is latent["noise_mask"]


def test_sampler_custom_advanced_keeps_it_on_both_outputs(
    tiny_model: Any, tiny_positive: Any, tiny_negative: Any
) -> None:
    latent = masked_source()
    (noise,) = sn.RandomNoise().run(3)
    (guider,) = sn.CFGGuider().run(tiny_model, tiny_positive, tiny_negative, 5.0)
    (sampler,) = sn.KSamplerSelect().run("euler")
    (sigmas,) = sn.BasicScheduler().run(tiny_model, "karras", 2, 1.0)
    result = sn.SamplerCustomAdvanced().run(noise, guider, sampler, sigmas, latent)
    output, denoised = result.outputs if hasattr(result, "outputs") else result
    assert output["noise_mask"] is latent["noise_mask"] and denoised["noise_mask"] is latent["noise_mask"]


def test_a_second_pass_repaints_only_the_masked_area(tiny_model: Any, tiny_positive: Any, tiny_negative: Any) -> None:
    latent = masked_source()
    first = ksample(tiny_model, tiny_positive, tiny_negative, latent, steps=3, seed=1)
    second = ksample(tiny_model, tiny_positive, tiny_negative, first, steps=3, seed=2, denoise=0.6)
    assert torch.allclose(outside(second["samples"], 2), outside(latent["samples"], 2), atol=1e-6)
    inside = (second["samples"][..., 3:5, 3:5] - first["samples"][..., 3:5, 3:5]).abs().mean()
    assert inside > 0.01
    # what the mask prevents: the same pass without it changes the border too
    unmasked = ksample(
        tiny_model, tiny_positive, tiny_negative, {"samples": first["samples"]}, steps=3, seed=2, denoise=0.6
    )
    assert not torch.allclose(outside(unmasked["samples"], 2), outside(latent["samples"], 2))


def test_latent_upscales_keep_the_mask_unresized(tiny_model: Any, tiny_positive: Any, tiny_negative: Any) -> None:
    latent = masked_source()
    by = LatentUpscaleBy().run(latent, "bilinear", 1.5)[0]
    to = LatentUpscale().run(latent, "nearest-exact", 128, 128, "disabled")[0]
    assert by["samples"].shape[-2:] == (12, 12) and to["samples"].shape[-2:] == (16, 16)
    assert by["noise_mask"] is latent["noise_mask"] and to["noise_mask"] is latent["noise_mask"]
    # sampling resizes the 64x64 mask to 12x12: cells 0..2 and 9..11 stay 0 (bilinear)
    out = ksample(tiny_model, tiny_positive, tiny_negative, by, steps=2)
    assert torch.allclose(outside(out["samples"], 3), outside(by["samples"], 3), atol=1e-6)
    assert (out["samples"][..., 5:7, 5:7] - by["samples"][..., 5:7, 5:7]).abs().mean() > 0.01
    out = ksample(tiny_model, tiny_positive, tiny_negative, to, steps=2)
    assert torch.allclose(outside(out["samples"], 4), outside(to["samples"], 4), atol=1e-6)
