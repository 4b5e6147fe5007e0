"""The sampler and decoder nodes' ``run_batch`` (``--batch-prompts``): several prompts' calls as
one batch give each prompt what it gets alone, and what cannot be batched so is declined."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.batch_sampling import DETERMINISTIC_SAMPLERS
from nodes.diffusion.guidance import Guider
from nodes.diffusion.noise import NoNoise, RandomNoiseSource
from nodes.diffusion.samplers import denoise_sigmas, resolve_sampler
from nodes.diffusion.vae_nodes import VAEDecode
from tests.support.tiny_unet import conditioning, empty


def close(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Equal up to the rounding of batched matrix products (relative to the tensor's scale)."""
    return got.shape == want.shape and float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())


def ksampler_calls(model: Any, sampler: str = "euler", count: int = 3, **change: Any) -> list[dict[str, Any]]:
    negative, latent = conditioning(99), empty(size=32)
    return [
        {
            "model": model,
            "seed": 10 + i,
            "steps": 3,
            "cfg": 6.0,
            "sampler_name": sampler,
            "scheduler": "karras",
            "positive": conditioning(i),
            "negative": negative,
            "latent_image": latent,
            "denoise": 1.0,
            **change,
        }
        for i in range(count)
    ]


def latent_of(outcome: Any, index: int = 0) -> torch.Tensor:
    outputs = outcome.outputs if hasattr(outcome, "outputs") else outcome
    return outputs[index]["samples"]


@pytest.mark.parametrize("sampler", sorted(DETERMINISTIC_SAMPLERS))
def test_each_prompt_of_a_batch_gets_its_own_picture(tiny_model, sampler):
    calls = ksampler_calls(tiny_model, sampler)
    batched = sn.KSampler.run_batch(calls)
    assert batched is not None and len(batched) == 3
    for call, outcome in zip(calls, batched, strict=True):
        assert close(latent_of(outcome), latent_of(sn.KSampler().run(**call)))
    # and not a copy of one another: each prompt's own seed and text
    assert not close(latent_of(batched[0]), latent_of(batched[1]))


def test_latents_of_several_images_keep_their_rows(tiny_model):
    calls = ksampler_calls(tiny_model, count=2)
    calls[0]["latent_image"] = calls[1]["latent_image"] = empty(batch=2, size=32)
    batched = sn.KSampler.run_batch(calls)
    assert batched is not None
    for call, outcome in zip(calls, batched, strict=True):
        assert latent_of(outcome).shape == (2, 4, 4, 4)
        assert close(latent_of(outcome), latent_of(sn.KSampler().run(**call)))


def test_ksampler_advanced_batches_a_second_pass_without_noise(tiny_model):
    first = [latent_of(outcome) for outcome in sn.KSampler.run_batch(ksampler_calls(tiny_model))]
    calls = []
    for i, samples in enumerate(first):
        call = ksampler_calls(tiny_model, count=1)[0]
        del call["seed"], call["denoise"]
        call.update(
            noise_seed=5 + i,
            positive=conditioning(i),
            latent_image={"samples": samples},
            add_noise="disable",
            start_at_step=1,
            end_at_step=10000,
            return_with_leftover_noise="disable",
        )
        calls.append(call)
    batched = sn.KSamplerAdvanced.run_batch(calls)
    assert batched is not None
    for call, outcome in zip(calls, batched, strict=True):
        assert close(latent_of(outcome), latent_of(sn.KSamplerAdvanced().run(**call)))


def test_sampler_custom_advanced_merges_the_guiders(tiny_model):
    sigmas = denoise_sigmas(tiny_model.scheduler_config, "karras", 3, 1.0)
    sampler, latent, negative = resolve_sampler("dpmpp_2m"), empty(size=32), conditioning(99)
    calls = []
    for i in range(3):
        guider = Guider(tiny_model, 5.0)
        guider.set_conds(conditioning(i), negative)
        noise = RandomNoiseSource(20 + i) if i else NoNoise()
        calls.append({"noise": noise, "guider": guider, "sampler": sampler, "sigmas": sigmas, "latent_image": latent})
    batched = sn.SamplerCustomAdvanced.run_batch(calls)
    assert batched is not None
    for call, outcome in zip(calls, batched, strict=True):
        alone = sn.SamplerCustomAdvanced().run(**call)
        assert close(latent_of(outcome, 0), latent_of(alone, 0))  # output
        assert close(latent_of(outcome, 1), latent_of(alone, 1))  # denoised_output


def _longer_text(calls: list[dict[str, Any]]) -> None:
    tensor, options = calls[1]["positive"][0]
    calls[1]["positive"] = [[torch.cat([tensor, tensor], dim=1), options]]


def _wrapped_model(calls: list[dict[str, Any]]) -> None:
    model = calls[0]["model"].with_wrapper(lambda apply, args: apply(args))
    for call in calls:
        call["model"] = model


DECLINED = {
    "a sampler that draws noise along the way": lambda calls: [c.update(sampler_name="euler_ancestral") for c in calls],
    "different steps": lambda calls: calls[1].update(steps=4),
    "different latent sizes": lambda calls: calls[1].update(latent_image=empty(size=48)),
    "an inpainting mask": lambda calls: calls[1].update(
        latent_image={**calls[1]["latent_image"], "noise_mask": torch.ones(1, 32, 32)}
    ),
    "text encodings of different token lengths": _longer_text,
    "an area": lambda calls: calls[1].update(positive=[[calls[1]["positive"][0][0], {"area": (2, 2, 0, 0)}]]),
    "a ControlNet": lambda calls: calls[1].update(positive=[[calls[1]["positive"][0][0], {"control": object()}]]),
    "two entries": lambda calls: calls[1].update(positive=calls[1]["positive"] + calls[0]["positive"]),
    "a wrapped MODEL": _wrapped_model,
}


@pytest.mark.parametrize("change", DECLINED.values(), ids=DECLINED.keys())
def test_what_cannot_share_a_batch_is_declined(tiny_model, change):
    calls = ksampler_calls(tiny_model)
    change(calls)
    assert sn.KSampler.run_batch(calls) is None


def test_the_decoder_decodes_the_prompts_latents_at_once(tiny_paths, manager):
    from nodes.diffusion.loaders import CheckpointLoaderSimple

    _, _, vae = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
    g = torch.Generator().manual_seed(3)
    latents = [{"samples": torch.randn((n, 4, 4, 4), generator=g)} for n in (1, 2, 1)]
    calls = [{"samples": latent, "vae": vae} for latent in latents]
    batched = VAEDecode.run_batch(calls)
    assert batched is not None
    for call, (image,) in zip(calls, batched, strict=True):
        alone = VAEDecode().run(**call)[0]
        assert image.shape == alone.shape and float((image - alone).abs().max()) <= 1e-5
    _, _, other = CheckpointLoaderSimple().run("tiny-sd2.safetensors")
    assert VAEDecode.run_batch([calls[0], {**calls[1], "vae": other}]) is None  # another VAE
