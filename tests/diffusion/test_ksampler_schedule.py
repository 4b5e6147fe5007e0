"""KSampler's own schedule rule: for dpm_2, dpm_2_ancestral, uni_pc and uni_pc_bh2 ComfyUI's
KSampler computes the schedule for one step more and drops its last nonzero sigma
(``KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS`` in comfy/samplers.py). Checked end to end:
KSampler's latent equals the same sampler run on that schedule written out by hand."""

from __future__ import annotations

import pytest
import torch

from nodes.diffusion.guidance import Guider
from nodes.diffusion.noise import RandomNoiseSource
from nodes.diffusion.samplers import SAMPLERS, compute_sigmas
from nodes.diffusion.sampling import sample
from tests.support.tiny_unet import conditioning, empty, ksample

STEPS, SEED, CFG = 4, 5, 5.0


def by_hand(model, sampler: str, scheduler: str, discard: bool) -> torch.Tensor:
    sigmas = compute_sigmas(model.scheduler_config, scheduler, STEPS + (1 if discard else 0))
    if discard:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    assert len(sigmas) == STEPS + 1
    guider = Guider(model, CFG)
    guider.set_conds(conditioning(1), conditioning(2))
    latent = empty()
    noise = RandomNoiseSource(SEED).generate_noise(latent)
    return sample(guider, SAMPLERS[sampler], sigmas, noise, latent["samples"], seed=SEED).samples


@pytest.mark.parametrize(
    ("sampler", "discard"),
    [("dpm_2", True), ("dpm_2_ancestral", True), ("uni_pc", True), ("uni_pc_bh2", True), ("euler", False)],
)
def test_ksampler_drops_the_penultimate_sigma_for_the_samplers_comfyui_names(tiny_model, sampler, discard):
    for scheduler in ("ddim_uniform", "karras"):
        out = ksample(
            tiny_model,
            conditioning(1),
            conditioning(2),
            empty(),
            seed=SEED,
            steps=STEPS,
            cfg=CFG,
            sampler=sampler,
            scheduler=scheduler,
        )["samples"]
        torch.testing.assert_close(out, by_hand(tiny_model, sampler, scheduler, discard), rtol=1e-5, atol=1e-5)
        if discard:  # and the rule is visible: the plain schedule gives another latent
            assert (out - by_hand(tiny_model, sampler, scheduler, False)).abs().max() > 1e-3
