"""Edit-friendly DDPM inversion: per-step noise maps that make DDPM sampling return the picture.

Huberman-Spiegelglas, Kulikov, Michaeli, "An Edit Friendly DDPM Noise Space: Inversion and
Manipulations", CVPR 2024, arXiv:2304.06140. DDPM sampling draws a fresh noise map ``z_t`` at every
step: ``x_{t-1} = mu_t(x_t) + sigma_t * z_t``. The paper picks the maps so that sampling
*reconstructs* a given picture: noise the clean latent to every level independently,
``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps_t`` with fresh ``eps_t`` for each ``t`` (not a
trajectory: the levels are drawn independently, which is what makes the maps "edit friendly", with
stronger structure than Gaussian noise), then solve the sampling step for its noise::

    z_t = (x_{t-1} - mu_t(x_t)) / sigma_t

Sampling with the same prompt and these maps reproduces ``x_0`` exactly (by construction, up to
rounding); sampling with another prompt and the *same* maps edits it, keeping the structure the
maps carry. Starting the edit ``T_skip`` steps below the top (``InversionSigmas``' ``skip_steps``)
keeps more of the picture; the paper uses a larger CFG for the target prompt than for the source.

In k-diffusion's space the DDPM posterior between two levels ``sigma > sigma'`` is (the VP chain
maps to independent Gaussian increments of variance ``sigma^2 - sigma'^2``)::

    mu = x0_hat + (sigma'/sigma)^2 (x - x0_hat),   spread = sigma' sqrt(1 - (sigma'/sigma)^2)

The last step, to ``sigma' = 0``, has no spread; its "map" is stored as the residual itself
(spread 1), so the reconstruction stays exact there too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nodes.api import Input, Int, Node, Output

from .common import (
    INVERSION,
    Denoiser,
    Inversion,
    InversionRun,
    check_inversion_inputs,
    inversion_run,
    make_guider,
    model_inputs,
    out_latent,
    precision_input,
    result,
    schedule,
    schedule_inputs,
    stored,
)

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

NODE = "DDPMEditFriendlyInversion"


def posterior(x: torch.Tensor, denoised: torch.Tensor, sigma: float, sigma_next: float) -> tuple[torch.Tensor, float]:
    """The DDPM posterior mean of the level ``sigma_next`` given ``x`` at ``sigma`` and its clean
    estimate, and the posterior's standard deviation (the spread of the noise map)."""
    ratio = (sigma_next / sigma) ** 2
    mean = denoised + ratio * (x - denoised)
    return mean, sigma_next * math.sqrt(max(1.0 - ratio, 0.0))


def ddpm_invert(
    denoise: Denoiser, x0: torch.Tensor, sigmas: torch.Tensor, seed: int, run: InversionRun | None = None
) -> tuple[list[Any], list[Any], list[float]]:
    """Independently noised levels ``states[i]`` (at ``sigmas[i]``), the noise maps and spreads of
    the steps ``i -> i+1`` (``states[-1]`` is ``x0``)."""
    import torch

    n = len(sigmas) - 1
    generator = torch.Generator().manual_seed(int(seed) % (2**64))
    x0 = denoise.to_work(x0)
    states: list[Any] = []
    for i in range(n + 1):
        sigma = float(sigmas[i])
        if i == n or sigma == 0.0:
            states.append(x0)
            continue
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32)
        states.append(x0 + sigma * denoise.to_work(noise))
    states[n] = x0
    maps: list[Any] = []
    spreads: list[float] = []
    for i in range(n):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        mean, spread = posterior(states[i], denoise(states[i], sigma), sigma, sigma_next)
        if spread <= 0.0:
            spread = 1.0  # a deterministic step: the map is the residual itself
        maps.append((states[i + 1] - mean) / spread)
        spreads.append(spread)
        if run is not None:
            run.step(i + 1)
    return states, maps, spreads


def ddpm_sample(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    maps: list[Any],
    spreads: list[float],
    run: LoopRun | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DDPM sampling along ``sigmas`` with the given noise maps (``maps[j]`` for step ``j``)."""
    x = denoise.to_work(x)
    denoised = x
    for j in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[j]), float(sigmas[j + 1])
        denoised = denoise(x, sigma)
        mean, _ = posterior(x, denoised, sigma, sigma_next)
        x = mean + spreads[j] * denoise.to_work(maps[j])
        if run is not None:
            x = run.step_done(j + 1, x, denoised)
    return x, denoised


def regenerate(inversion: Inversion, run: LoopRun, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The matching sampler: DDPM with the stored maps from the stored level at ``run.sigmas[0]``."""
    assert inversion.noise_maps is not None and inversion.spreads is not None
    denoise = Denoiser(run.guider, tuple(inversion.states[0].shape), inversion.precision)
    steps = len(run.sigmas) - 1
    return ddpm_sample(
        denoise,
        inversion.states[start],
        run.sigmas,
        inversion.noise_maps[start : start + steps],
        inversion.spreads[start : start + steps],
        run,
    )


class DDPMEditFriendlyInversion(Node):
    display_name = "DDPM Edit-Friendly Inversion"
    category = "sampling/inversion"
    description = (
        "Edit-friendly DDPM inversion (Huberman-Spiegelglas, Kulikov & Michaeli, CVPR 2024, arXiv:2304.06140): "
        "noises the latent to every level independently and computes the per-step noise maps with which DDPM "
        "sampling reconstructs it exactly. Regenerate with InversionSampler: the same prompt gives the picture "
        "back; another prompt (usually with a higher CFG) edits it while the maps keep its structure. Start the "
        "edit part-way down with InversionSigmas' skip_steps (the paper's T_skip)."
    )
    inputs = (
        *model_inputs(),
        Input("latent", "LATENT", tooltip="The picture to invert (VAEEncode of it)."),
        *schedule_inputs(),
        Int(
            "seed",
            0,
            min=0,
            max=0xFFFFFFFFFFFFFFFF,
            control_after_generate=True,
            tooltip="Seed of the independent noise drawn for each level.",
        ),
        precision_input(),
    )
    outputs = (Output("LATENT", "noisy_latent"), Output(INVERSION, "inversion"))

    def run(
        self,
        model: Any,
        positive: Any,
        latent: dict,
        steps: int,
        scheduler: str,
        denoise: float,
        seed: int,
        precision: str,
        cfg: float = 1.0,
        negative: Any = None,
    ) -> Any:
        model, samples = check_inversion_inputs(NODE, model, positive, negative, latent)
        sigmas = schedule(NODE, model, scheduler, steps, denoise)
        guider = make_guider(model, positive, negative, cfg)
        denoiser = Denoiser(guider, tuple(samples.shape), precision)
        x0 = model.process_in(samples.to(denoiser.dtype))
        with inversion_run(guider, sigmas, len(sigmas) - 1) as run:
            states, maps, spreads = ddpm_invert(denoiser, x0, sigmas, seed, run)
            states, maps = [stored(s) for s in states], [stored(m) for m in maps]
        inversion = Inversion(
            "ddpm_edit_friendly",
            sigmas.clone(),
            states,
            positive,
            negative,
            float(cfg),
            precision,
            noise_maps=maps,
            spreads=spreads,
            options={"seed": int(seed)},
            latent=latent,
        )
        noisy = out_latent(latent, model.process_out(states[0]).float())
        lines = [f"edit-friendly DDPM inversion: {len(sigmas) - 1} noise maps, {denoiser.calls} model evaluations"]
        return result((noisy, inversion), run.reports, lines)


NODES = [DDPMEditFriendlyInversion]
