"""Every sampler steps through exactly the schedule asked for, with every scheduler.

The diffusers-backed samplers get Weft's sigmas through scheduler internals (see
nodes/diffusion/steppers.py), which a diffusers release may change; these tests read back
the noise level each step actually reaches, so such a change fails here, by name.

The model is an oracle for data that is a single point, x0 = 0: its noise prediction at
noise level s is x / s (VE space). Along such a run every correct sampler keeps the sample
at ``noise * sigma`` (deterministic samplers: exactly) or at a Gaussian of standard
deviation ``sigma`` (ancestral and SDE samplers: they replace part of the noise), so the
sample after step k tells which sigma the step reached.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from nodes.diffusion.own_steppers import OwnStepper
from nodes.diffusion.samplers import SAMPLERS, SCHEDULER_NAMES, compute_sigmas
from nodes.diffusion.schedules import whole_timestep
from nodes.diffusion.types import default_scheduler_config
from nodes.diffusion.unipc import UniPcStepper
from tests.support.comfy_timestep import comfy_timestep

CONFIG = default_scheduler_config("sd1", "epsilon")
STOCHASTIC = {
    "euler_ancestral",
    "dpm_2_ancestral",
    "dpmpp_2s_ancestral",
    "lcm",
    "ddpm",
}
#: (sampler, scheduler) pairs that miss the schedule by more than these tests allow, and why
KNOWN_OFF_SCHEDULE: dict[tuple[str, str], str] = {}
SHAPE = (1, 4, 64, 64)  # enough elements for the spread of a noisy sample to read its sigma to 1 %
STEPS = 7


def test_every_sampler_is_classified():
    assert STOCHASTIC <= set(SAMPLERS)


def oracle_run(name: str, sigmas: torch.Tensor) -> tuple[Any, list[torch.Tensor], list[tuple[float, float]], Any]:
    """Drive ``name``'s stepper through ``sigmas`` like the sampling loop does, with the x0 = 0 oracle.

    Returns the stepper, the VE sample after each completed step (the last one as the loop
    finishes it), per model call (timestep given, sigma) and the starting noise.

    Weft's own steppers run in float64: their arithmetic is Weft's, and multistep weights on
    uneven steps amplify float32 rounding (lms's order-4 weights reach ~2000 on linear_quadratic,
    whose first sigmas are 0.8 % apart; ComfyUI's lms is no different), which is not the
    schedule's doing. The diffusers schedulers step in float32.
    """
    stepper = SAMPLERS[name].stepper(CONFIG, sigmas, seed=3)
    grid = [float(s) for s in stepper.grid]
    own = isinstance(stepper, OwnStepper)
    dtype = torch.float64 if own else torch.float32
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=dtype)
    x = noise * grid[0] / (math.sqrt(1 + grid[0] ** 2) if stepper.vp else 1.0)
    reached: list[torch.Tensor] = []
    timesteps: list[tuple[float, float]] = []
    for j in range(stepper.calls):
        x_in = stepper.scale_input(x, j)  # x_ve / sqrt(1 + sigma^2) in both spaces
        sigma = stepper.call_sigmas[j]
        if not stepper.vp:  # the call's sigma is the one its input was scaled by
            assert torch.allclose(x_in * math.sqrt(1 + sigma * sigma), x, rtol=1e-5, atol=1e-6), (name, j, sigma)
        eps = x_in * (math.sqrt(1 + sigma * sigma) / sigma)
        timesteps.append((float(stepper.timesteps[j]), sigma))
        if j % stepper.stages == 0:
            first = (eps, j, x)
        x = stepper.step(eps, j, x)
        if (j + 1) % stepper.stages and j + 1 < stepper.calls:
            continue
        done = j // stepper.stages + 1
        if j + 1 == stepper.calls:  # the loop's finish (sampling._finish)
            final = stepper.denoised(*first) if stepper.finish_denoised else stepper.to_latent(x)
            reached.append(final)
        else:
            reached.append(x * math.sqrt(1 + grid[done] ** 2) if stepper.vp else x)
    return stepper, reached, timesteps, noise


def schedules() -> list[tuple[str, str, torch.Tensor]]:
    """Each scheduler's schedule, whole and stopped above 0 (KSamplerAdvanced's leftover noise)."""
    cases = []
    for scheduler in SCHEDULER_NAMES:
        sigmas = compute_sigmas(CONFIG, scheduler, STEPS)
        cases.append((scheduler, "to 0", sigmas))
        cases.append((scheduler, "leftover", sigmas[:-3]))
    return cases


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_steps_through_the_schedule_asked_for(name):
    failures = []
    for scheduler, variant, sigmas in schedules():
        if (name, scheduler) in KNOWN_OFF_SCHEDULE:
            continue
        stepper, reached, timesteps, noise = oracle_run(name, sigmas)
        asked = [float(s) for s in sigmas[1:]]
        if stepper.stops_short_of_zero and asked[-1] == 0:
            asked[-1] = UniPcStepper.FINAL_SIGMA  # ComfyUI's UniPC ends at 0.001, not 0
        where = f"{scheduler} ({variant})"
        if len(reached) != len(asked):
            failures.append(f"{where}: {len(reached)} steps for {len(asked)} asked")
            continue
        ms = stepper.ms
        for given, sigma in timesteps:
            # the predictor is told the call's noise level, and the UNet ComfyUI's whole timestep for it
            whole = float(whole_timestep(torch.tensor(given)))
            read_back = float(ms.t_to_sigma(torch.tensor(given)))
            if whole != comfy_timestep(sigma, ms.log_sigmas) or abs(read_back - sigma) > 2e-6 * sigma:
                failures.append(f"{where}: timestep {given} for sigma {sigma}")
        for k, (x, sigma) in enumerate(zip(reached, asked, strict=True), start=1):
            if name in STOCHASTIC:
                got = float(x.std())
                ok = abs(got - sigma) <= 0.03 * sigma + 1e-4
            else:
                got = float((x / noise).median())
                ok = float((x - noise * sigma).abs().max()) <= 1e-4 * (1 + sigma)
            if not ok:
                failures.append(f"{where}: step {k} reached {got:.5g}, asked {sigma:.5g}")
    assert not failures, f"{name}:\n" + "\n".join(failures)
