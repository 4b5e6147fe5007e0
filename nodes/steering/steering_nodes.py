"""SAMPLER nodes that steer sampling with a REWARD: Feynman-Kac steering and best-of-N.

They output a SAMPLER for SamplerCustomAdvanced (or SamplerCustom): noise, guider, sigmas
and LATENT are wired as for any sampler. What each run spent and scored (model evaluations,
resamplings, best reward) appears in the sampling node's UI text and in the log.
"""

from __future__ import annotations

from typing import Any

from ..api import Combo, Float, Input, Int, Node, Output
from .base_steps import BASE_SAMPLERS
from .particles import OUTPUTS
from .resampling import POTENTIALS, RESAMPLING
from .reward import REWARD_TYPE, check_reward

CATEGORY = "sampling/steering"
SEED_MAX = 0xFFFFFFFFFFFFFFFF


def _check_vae(vae: Any) -> Any:
    if not callable(getattr(vae, "decode", None)):
        raise ValueError(
            "input 'vae' is not a VAE (connect the checkpoint loader's VAE: the reward scores decoded pictures)"
        )
    return vae


def _common_inputs(default_sampler: str) -> tuple:
    return (
        Input("vae", "VAE", tooltip="Decodes the particles' predictions for the reward."),
        Input("reward", REWARD_TYPE, tooltip="What makes a picture better (higher is better)."),
        Combo(
            "sampler_name",
            list(BASE_SAMPLERS),
            default=default_sampler,
            tooltip="The base sampler that moves each particle.",
        ),
    )


def _tail_inputs() -> tuple:
    return (
        Combo(
            "output",
            list(OUTPUTS),
            tooltip="best: the best-rewarded particle per picture; all: every particle, "
            "best first (a batch of particles x pictures).",
        ),
        Int(
            "seed",
            0,
            min=0,
            max=SEED_MAX,
            control_after_generate=True,
            tooltip="Seeds the extra particles' noise and the resampling (mixed with the noise seed).",
        ),
    )


class SamplerFKSteering(Node):
    category = CATEGORY
    description = (
        "Feynman-Kac steering (Singhal et al., 'A General Framework for Inference-time Scaling and "
        "Steering of Diffusion Models', arXiv 2501.06848): k particles are sampled together; at every "
        "resampling step their clean predictions are decoded and scored by the REWARD, and particles are "
        "resampled by the potentials exp(lambda * v) (v: the max, sum or step difference of rewards "
        "along the path). With a deterministic base sampler (euler, dpmpp_2m) the copies a resampling "
        "makes are re-noised from their clean prediction so they explore. Returns the particle with the "
        "best final reward."
    )
    inputs = (
        *_common_inputs("euler"),
        Int("particles", 4, min=1, max=64, tooltip="k: particles per picture (the model runs k times per step)."),
        Combo(
            "potential",
            list(POTENTIALS),
            tooltip="max / sum of the rewards along a path, or their step difference (the paper's three potentials).",
        ),
        Float(
            "lambda",
            10.0,
            min=0.0,
            max=1000.0,
            step=0.5,
            tooltip="Potentials are exp(lambda * v): higher selects harder, 0 never prefers a particle.",
        ),
        Int("resample_every", 5, min=1, max=10000, tooltip="Resampling interval in steps (first at this step)."),
        Combo("resampling", list(RESAMPLING), tooltip="systematic (lower variance) or multinomial draws."),
        Float(
            "ess_threshold",
            1.0,
            min=0.0,
            max=1.0,
            step=0.05,
            tooltip="Resample only when the effective sample size is below this fraction of k "
            "(1: at every resampling step).",
        ),
        *_tail_inputs(),
    )
    outputs = (Output("SAMPLER"),)

    def run(
        self,
        vae: Any,
        reward: Any,
        sampler_name: str,
        particles: int,
        potential: str,
        resample_every: int,
        resampling: str,
        ess_threshold: float,
        output: str,
        seed: int,
        **rest: Any,
    ) -> tuple:
        from .particles import ParticleSampler, SteeringSettings

        settings = SteeringSettings(
            potential=potential,
            scale=float(rest.get("lambda", 10.0)),
            every=resample_every,
            method=resampling,
            ess_threshold=ess_threshold,
        )
        return (
            ParticleSampler(
                base=sampler_name,
                vae=_check_vae(vae),
                reward=check_reward(reward),
                particles=particles,
                seed=seed,
                output=output,
                steering=settings,
            ),
        )


class SamplerBestOfN(Node):
    category = CATEGORY
    description = (
        "Best-of-N, the baseline of inference-time scaling (as compared in Singhal et al., arXiv "
        "2501.06848): N independent samples with the base sampler, batched, and the one with the best "
        "REWARD on the finished picture. Same model evaluations as Feynman-Kac steering with N particles."
    )
    inputs = (
        *_common_inputs("euler"),
        Int("candidates", 4, min=1, max=64, tooltip="N: samples per picture (the model runs N times per step)."),
        *_tail_inputs(),
    )
    outputs = (Output("SAMPLER"),)

    def run(self, vae: Any, reward: Any, sampler_name: str, candidates: int, output: str, seed: int) -> tuple:
        from .particles import ParticleSampler

        return (
            ParticleSampler(
                base=sampler_name,
                vae=_check_vae(vae),
                reward=check_reward(reward),
                particles=candidates,
                seed=seed,
                output=output,
            ),
        )


NODES = [SamplerFKSteering, SamplerBestOfN]
