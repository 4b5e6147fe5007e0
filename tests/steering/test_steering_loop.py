"""The steering samplers on the tiny SD1 model: one particle is the plain sampler, more
particles never lower the expected reward, and the particle loop keeps the loop's contract
(noise seeds, masks, per-picture prompts, reports, the engine's graph)."""

from __future__ import annotations

import pytest
import torch

from engine import Executor, validate_prompt
from nodes.api import Input, Node, Output
from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.latent import EmptyLatentImage
from nodes.registry import builtin_registry
from nodes.steering.builtin_rewards import ImageStatisticsReward
from nodes.steering.particles import ParticleSampler, SteeringSettings
from nodes.steering.steering_nodes import SamplerBestOfN, SamplerFKSteering


def empty(batch: int = 1) -> dict:
    return EmptyLatentImage().run(64, 64, batch)[0]


def plain(model, positive, negative, latent, *, seed, steps, sampler, scheduler="karras", cfg=5.0) -> torch.Tensor:
    return sn.KSampler().run(model, seed, steps, cfg, sampler, scheduler, positive, negative, latent, 1.0)[0]["samples"]


def custom(model, positive, negative, latent, sampler, *, seed, steps, scheduler="karras", cfg=5.0):
    """SamplerCustomAdvanced with ``sampler``: the graph a user wires for a steering SAMPLER."""
    guider = sn.CFGGuider().run(model, positive, negative, cfg)[0]
    sigmas = sn.BasicScheduler().run(model, scheduler, steps, 1.0)[0]
    noise = sn.RandomNoise().run(seed)[0]
    return sn.SamplerCustomAdvanced().run(noise, guider, sampler, sigmas, latent)


def fk(vae, reward, *, base="euler_ancestral", k=4, seed=0, **settings) -> ParticleSampler:
    return ParticleSampler(
        base=base, vae=vae, reward=reward, particles=k, seed=seed, steering=SteeringSettings(**{"every": 2, **settings})
    )


def assert_same_run(ours: torch.Tensor, reference: torch.Tensor) -> None:
    """The same sampler computed in two orders of float32 operations (the particle loop's and the
    stepper's): a few 1e-6 of the latent's scale apart, element by element (a wrong step, noise
    draw or timestep is 1e-3 of it or more)."""
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5 * float(reference.abs().max()))


BRIGHT = ImageStatisticsReward("brightness")
#: The tiny random VAE decodes every latent to a nearly mid-grey picture: brightness varies between
#: particles in the third decimal, so lambda is scaled to make that a real preference.
TINY_LAMBDA = 2000.0


@pytest.mark.parametrize(
    ("base", "scheduler", "steps"),
    [("euler", "karras", 6), ("euler_ancestral", "karras", 6), ("dpmpp_2m", "karras", 6)],
)
def test_fk_steering_with_one_particle_equals_the_plain_sampler(model, vae, positive, negative, base, scheduler, steps):
    sampler = SamplerFKSteering().run(vae, BRIGHT, base, 1, "max", 2, "systematic", 1.0, "best", 7, **{"lambda": 10.0})[
        0
    ]
    steered = custom(model, positive, negative, empty(), sampler, seed=3, steps=steps, scheduler=scheduler)
    reference = plain(model, positive, negative, empty(), seed=3, steps=steps, sampler=base, scheduler=scheduler)
    assert_same_run(steered.outputs[0]["samples"], reference)
    report = steered.ui["weft_report"][0]
    assert report["name"] == "FKSteering" and report["particles"] == 1
    assert report["model_evaluations"] == steps and report["resamples"] == 0


def test_best_of_one_equals_the_plain_sampler(model, vae, positive, negative):
    sampler = SamplerBestOfN().run(vae, BRIGHT, "euler", 1, "best", 0)[0]
    steered = custom(model, positive, negative, empty(), sampler, seed=5, steps=4, scheduler="normal")
    reference = plain(model, positive, negative, empty(), seed=5, steps=4, sampler="euler", scheduler="normal")
    assert_same_run(steered.outputs[0]["samples"], reference)


def _best_rewards(model, vae, positive, negative, make, ks, seeds, steps=6) -> dict[int, float]:
    means = {}
    for k in ks:
        total = 0.0
        for seed in seeds:
            sampler = make(k, seed)
            custom(model, positive, negative, empty(), sampler, seed=seed, steps=steps)
            total += float(sampler.last_rewards.max())
        means[k] = total / len(seeds)
    return means


@pytest.mark.parametrize("kind", ["fk_euler_ancestral", "fk_euler", "best_of_n"])
def test_reward_does_not_decrease_in_expectation_as_k_grows(model, vae, positive, negative, kind):
    def make(k: int, seed: int) -> ParticleSampler:
        if kind.startswith("fk_"):
            return fk(vae, BRIGHT, base=kind.removeprefix("fk_"), k=k, seed=seed, scale=TINY_LAMBDA)
        return ParticleSampler(base="euler_ancestral", vae=vae, reward=BRIGHT, particles=k, seed=seed)

    means = _best_rewards(model, vae, positive, negative, make, (1, 2, 4), range(6))
    print(f"\n{kind}: mean best brightness over 6 seeds by k: {means}")
    assert means[1] <= means[2] <= means[4]
    assert means[4] > means[1]


def test_the_reward_steers_both_ways(model, vae, positive, negative):
    """Steering by brightness and by its negation pulls the picked particles apart."""
    from nodes.steering.builtin_rewards import CombinedReward

    darker = CombinedReward([(BRIGHT, -1.0)])
    bright, dark = [], []
    for seed in range(4):
        for reward, into in ((BRIGHT, bright), (darker, dark)):
            sampler = fk(vae, reward, k=4, seed=seed, scale=TINY_LAMBDA)
            out = custom(model, positive, negative, empty(), sampler, seed=seed, steps=6).outputs[0]["samples"]
            into.append(float(BRIGHT(vae.decode(out), None).mean()))
    assert sum(bright) > sum(dark)


def test_all_particles_come_back_best_first_with_their_evaluations(model, vae, positive, negative):
    sampler = ParticleSampler(
        base="euler_ancestral",
        vae=vae,
        reward=BRIGHT,
        particles=3,
        seed=1,
        output="all",
        steering=SteeringSettings(every=2),
    )
    result = custom(model, positive, negative, empty(2), sampler, seed=2, steps=5)
    samples = result.outputs[0]["samples"]
    assert samples.shape == (6, 4, 8, 8)
    scores = BRIGHT(vae.decode(samples), None).view(2, 3)  # picture-major: each picture's particles together
    assert bool((scores[:, :-1] >= scores[:, 1:] - 1e-5).all())
    report = result.ui["weft_report"][0]
    assert report["model_evaluations"] == 15  # 5 steps x 3 particles, whatever the batch
    assert report["resamples"] == 2  # before steps 2 and 4 (0-based), never before the first
    assert report["reward_evaluations"] == 2 * 3 * 2 + 3 * 2
    assert result.ui["text"][0].startswith("FKSteering: particles=3")


def test_copies_of_a_deterministic_particle_are_renoised_and_explore():
    """With an ODE base sampler a resampled copy would retrace its parent exactly; the second and
    later copies are re-noised from the shared clean prediction (x = x0 + sigma * noise) instead,
    the first copy keeps its state."""
    from nodes.steering.particles import _renoise_copies

    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()  # particles 0..3 of one picture
    denoised = torch.full_like(x, 10.0)
    rows = torch.tensor([[0], [0], [2], [0]])
    out = _renoise_copies(x[rows.flatten()], denoised[rows.flatten()], rows, 0.5, torch.Generator().manual_seed(0))
    assert out[0].eq(0.0).all() and out[2].eq(2.0).all()  # first copies: exact
    for copy in (1, 3):  # later copies: around the clean prediction, at the current noise level
        assert not torch.equal(out[copy], out[0])
        assert float((out[copy] - 10.0).abs().max()) < 0.5 * 5
    assert not torch.equal(out[1], out[3])


def test_per_picture_prompts_go_through_the_denoiser_per_particle(model, vae, positive, negative):
    """A conditioning with its own batch (one prompt per picture) cannot be stretched over the
    particle batch: the loop then runs the LATENT's batch per particle, with the same result
    for the first particle as the plain sampler."""
    both = [[torch.cat([positive[0][0], negative[0][0]]), {"pooled_output": None}]]
    sampler = fk(vae, BRIGHT, k=1)
    steered = custom(model, both, negative, empty(2), sampler, seed=4, steps=3)
    reference = plain(model, both, negative, empty(2), seed=4, steps=3, sampler="euler_ancestral")
    assert_same_run(steered.outputs[0]["samples"], reference)
    many = custom(model, both, negative, empty(2), fk(vae, BRIGHT, k=3), seed=4, steps=3)
    assert many.outputs[0]["samples"].shape == (2, 4, 8, 8)
    assert many.ui["weft_report"][0]["model_evaluations"] == 9


def test_an_inpainting_mask_keeps_the_known_region_in_every_particle(model, vae, positive, negative):
    latent = empty()
    latent["samples"] = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.zeros((1, 8, 8))
    mask[:, :, 4:] = 1.0
    latent["noise_mask"] = mask
    sampler = ParticleSampler(
        base="euler_ancestral",
        vae=vae,
        reward=BRIGHT,
        particles=3,
        seed=0,
        output="all",
        steering=SteeringSettings(every=1),
    )
    out = custom(model, positive, negative, latent, sampler, seed=1, steps=4).outputs[0]["samples"]
    assert out.shape == (3, 4, 8, 8)
    torch.testing.assert_close(out[:, :, :, :4], latent["samples"].expand(3, -1, -1, -1)[:, :, :, :4])
    assert not torch.allclose(out[0, :, :, 4:], out[1, :, :, 4:])


class _TinyParts(Node):
    name = "TestSteeringParts"
    inputs = ()
    outputs = (Output("MODEL"), Output("VAE"), Output("CONDITIONING"), Output("CONDITIONING"))
    values: tuple = ()

    def run(self):
        return self.values


class _LatentShape(Node):
    name = "TestLatentShape"
    output_node = True
    inputs = (Input("samples", "LATENT"),)
    outputs = ()

    def run(self, samples):
        from nodes.api import Result

        return Result(ui={"shape": list(samples["samples"].shape)})


def test_the_nodes_run_in_a_graph_and_report_to_the_sampling_node(model, vae, positive, negative):
    _TinyParts.values = (model, vae, positive, negative)
    registry = builtin_registry()
    registry.register(_TinyParts, pack="tests")
    registry.register(_LatentShape, pack="tests")
    prompt = {
        "parts": {"class_type": "TestSteeringParts", "inputs": {}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "bright": {
            "class_type": "ImageStatisticsReward",
            "inputs": {"statistic": "target_colour", "red": 0, "green": 128, "blue": 128},
        },
        "colourful": {
            "class_type": "ImageStatisticsReward",
            "inputs": {"statistic": "colourfulness", "red": 0, "green": 0, "blue": 0},
        },
        "reward": {
            "class_type": "CombineRewards",
            "inputs": {"reward_a": ["bright", 0], "weight_a": 1.0, "reward_b": ["colourful", 0], "weight_b": 0.5},
        },
        "fk": {
            "class_type": "SamplerFKSteering",
            "inputs": {
                "vae": ["parts", 1],
                "reward": ["reward", 0],
                "sampler_name": "euler_ancestral",
                "particles": 2,
                "potential": "difference",
                "lambda": 20.0,
                "resample_every": 1,
                "resampling": "multinomial",
                "ess_threshold": 0.5,
                "output": "best",
                "seed": 3,
            },
        },
        "guider": {
            "class_type": "CFGGuider",
            "inputs": {"model": ["parts", 0], "positive": ["parts", 2], "negative": ["parts", 3], "cfg": 5.0},
        },
        "sigmas": {
            "class_type": "BasicScheduler",
            "inputs": {"model": ["parts", 0], "scheduler": "karras", "steps": 3, "denoise": 1.0},
        },
        "noise": {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}},
        "sample": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["noise", 0],
                "guider": ["guider", 0],
                "sampler": ["fk", 0],
                "sigmas": ["sigmas", 0],
                "latent_image": ["latent", 0],
            },
        },
        "shape": {"class_type": "TestLatentShape", "inputs": {"samples": ["sample", 0]}},
    }
    checked = validate_prompt(prompt, registry, ["shape"])
    assert checked.ok, checked.node_errors
    events = []
    run = Executor(registry).execute_sync(
        "p", checked.prompt, ["shape"], order=checked.order, emit=lambda e, d: events.append((e, d))
    )
    assert run.status_str == "success", run
    executed = {d["node"]: d["output"] for e, d in events if e == "executed"}
    assert executed["shape"]["shape"] == [1, 4, 8, 8]
    report = executed["sample"]["weft_report"][0]
    assert report["name"] == "FKSteering" and report["potential"] == "difference"
    assert report["reward"] == "1*target_colour(0.00,0.50,0.50) + 0.5*colourfulness"
    bad = validate_prompt(
        {**prompt, "fk": {**prompt["fk"], "inputs": {**prompt["fk"]["inputs"], "potential": "median"}}},
        registry,
        ["shape"],
    )
    assert not bad.ok and "fk" in bad.node_errors
