"""Adaptive step size: ComfyUI's dpm_adaptive / dpm_fast (DPM-Solver, Lu et al., arXiv 2206.00927)
and Gotta Go Fast (Jolicoeur-Martineau et al., arXiv 2105.14080). Exactness on Gaussian data (a
closed-form ODE), convergence on the tiny random UNet, reports, seeds, masks and progress."""

from __future__ import annotations

import math

import pytest
import torch

from engine import validate_prompt
from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.guidance import Guider
from nodes.diffusion.noise import RandomNoiseSource
from nodes.diffusion.samplers import SAMPLER_NAMES, SAMPLERS, UNSUPPORTED_SAMPLERS, compute_sigmas
from nodes.diffusion.sampling import sample
from nodes.samplers.dpm_solver import (
    DPMAdaptiveSampler,
    DPMFastSampler,
    NoisePredictor,
    PIDStepSizeController,
    SamplerDPMAdaptative,
    _intermediate,
    dpm_solver_1,
    dpm_solver_2,
    dpm_solver_3,
)
from nodes.samplers.gotta_go_fast import GottaGoFastSampler, SamplerGottaGoFast
from tests.support.tiny_unet import empty

from .gaussian import GaussianRun, relative_error
from .prompts import custom_prompt, first_latent, ksampler_prompt, run_prompt

#: ComfyUI's ratio of atol to rtol (0.0078 / 0.05), kept when the tolerance is scaled
ATOL_PER_RTOL = 0.156


def test_dpm_adaptive_and_dpm_fast_are_offered():
    assert {"dpm_adaptive", "dpm_fast"} <= set(SAMPLER_NAMES)
    assert not {"dpm_adaptive", "dpm_fast"} & set(UNSUPPORTED_SAMPLERS)
    assert isinstance(sn.KSamplerSelect().run("dpm_adaptive")[0], DPMAdaptiveSampler)
    assert isinstance(sn.KSamplerSelect().run("dpm_fast")[0], DPMFastSampler)


# -- exactness on Gaussian data ----------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3])
def test_dpm_solver_steps_have_their_order(order):
    """One step's error shrinks as h^(order + 1): the steps are DPM-Solver-1/2/3 of the paper."""
    errors = []
    for h in (0.4, 0.2, 0.1):
        s, t = 1.0, math.exp(-h)
        run = GaussianRun([s, t])
        model = NoisePredictor(run)
        eps, _ = model(run.x, s)
        if order == 1:
            x = dpm_solver_1(run.x, eps, s, t)
        elif order == 2:
            x, _ = dpm_solver_2(model, run.x, eps, s, t)
        else:
            x = dpm_solver_3(model, run.x, eps, _intermediate(model, run.x, eps, s, t, 1 / 3), s, t)
        errors.append(relative_error(x, run.exact(t)))
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert coarse / fine == pytest.approx(2 ** (order + 1), rel=0.15)


def test_the_pid_controller_with_defaults_is_the_elementary_controller():
    pid = PIDStepSizeController(0.05, 0.0, 1.0, 0.0, 3, 0.81)
    assert pid.propose(0.5)
    assert pid.h == pytest.approx(0.05 * (1 + math.atan((1 / (0.5 + 1e-8)) ** (1 / 3) - 1)))
    h = pid.h
    assert not pid.propose(4.0)  # factor 1 + atan(0.63 - 1) = 0.65 < 0.81: rejected, and the step shrinks
    assert pid.h == pytest.approx(h * (1 + math.atan((1 / 4.0) ** (1 / 3) - 1)), rel=1e-6)


@pytest.mark.parametrize("order", [2, 3])
def test_dpm_adaptive_converges_to_the_exact_ode_solution(order):
    rows = []
    for tol in (1e-3, 1e-4, 1e-5):
        run = GaussianRun([14.6, 1.0, 0.03, 0.0])
        sampler = DPMAdaptiveSampler(order=order, rtol=tol, atol=tol * ATOL_PER_RTOL)
        x, _ = sampler.sample_loop(run)
        # ComfyUI's semantics: integrated to the last nonzero sigma, not denoised to 0
        rows.append((tol, run.model_calls, relative_error(x, run.exact(0.03))))
        assert sampler.report()["model_evaluations"] == run.model_calls
        assert run.progress[-1][0] == run.progress[-1][1] == sampler.report()["accepted"]
    print("\ndpm_adaptive order", order, "on Gaussian data: (rtol, evaluations, relative error)", rows)
    assert [r[1] for r in rows] == sorted(r[1] for r in rows) and rows[0][1] < rows[-1][1]
    assert rows[0][2] > rows[1][2] > rows[2][2]
    assert rows[-1][2] < 1e-4


def test_gotta_go_fast_as_an_ode_solver_converges_to_the_exact_solution():
    rows = []
    for tol in (1e-2, 1e-3, 1e-4):
        run = GaussianRun([14.6, 0.03])  # stops at 0.03: no final denoising step
        sampler = GottaGoFastSampler(rel_tol=tol, abs_tol=tol * ATOL_PER_RTOL, eta=0.0, exponent=0.5)
        x, _ = sampler.sample_loop(run)
        rows.append((tol, run.model_calls, relative_error(x, run.exact(0.03))))
    print("\ngotta_go_fast (eta 0) on Gaussian data: (rel_tol, evaluations, relative error)", rows)
    assert rows[0][1] < rows[1][1] < rows[2][1]
    assert rows[0][2] > rows[1][2] > rows[2][2]
    assert rows[-1][2] < 1e-3


def test_gotta_go_fast_sde_samples_the_data_distribution():
    """With eta 1 (the paper's reverse SDE) the result's spread is the data's, from any start."""
    run = GaussianRun([14.6, 0.03, 0.0], variance=0.5, shape=(8, 4, 16, 16))
    x, denoised = GottaGoFastSampler(rel_tol=0.05).sample_loop(run)
    assert float(x.std()) == pytest.approx(math.sqrt(0.5), rel=0.05)
    assert x is denoised  # the schedule ends at 0: the final denoising step is the result
    ode, _ = GottaGoFastSampler(rel_tol=0.05, eta=0.0).sample_loop(
        GaussianRun([14.6, 0.03, 0.0], variance=0.5, shape=(8, 4, 16, 16))
    )
    assert relative_error(x, ode) > 0.1  # the SDE's path is not the ODE's


def test_dpm_fast_spends_the_steps_as_model_evaluations_and_converges():
    assert DPMFastSampler.orders(10) == [3, 3, 3, 1]
    assert DPMFastSampler.orders(9) == [3, 3, 2, 1]
    assert DPMFastSampler.orders(2) == [2]
    errors = []
    for steps in (12, 24, 48):
        run = GaussianRun([14.6] + [1.0] * (steps - 2) + [0.03, 0.0])  # only the ends and the count matter
        x, _ = DPMFastSampler().sample_loop(run)
        assert run.model_calls == steps
        errors.append(relative_error(x, run.exact(0.03)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


# -- the tiny random UNet ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ode_setup(model, positive, negative):
    """A guider (cfg 1), noise, and the converged ODE solution from sigma_max to sigma_min:
    Weft's lms (order 4) with 400 Karras steps (it agrees with heun's 400 steps to 5e-5 of the
    latent's largest value; the model is called at whole timesteps, as in ComfyUI, so the ODE is
    only piecewise smooth)."""
    guider = Guider(model, 1.0)
    guider.set_conds(positive, negative)
    latent = empty()
    noise = RandomNoiseSource(1).generate_noise(latent)
    sigmas = compute_sigmas(model.scheduler_config, "karras", 400)[:-1]  # ends at sigma_min
    reference = sample(guider, SAMPLERS["lms"], sigmas, noise, latent["samples"]).samples
    return guider, noise, latent, reference


@pytest.mark.parametrize("name", ["dpm_adaptive", "gotta_go_fast"])
def test_adaptive_sampler_at_tight_tolerance_approaches_the_converged_ode_solution(model, ode_setup, name):
    guider, noise, latent, reference = ode_setup
    sigmas = compute_sigmas(model.scheduler_config, "karras", 3)[:-1]  # only the ends matter
    scale = float(reference.abs().mean())
    rows = []
    for tol in (0.1, 0.01, 0.001):
        if name == "dpm_adaptive":
            sampler = DPMAdaptiveSampler(rtol=tol, atol=tol * ATOL_PER_RTOL)
        else:
            sampler = GottaGoFastSampler(rel_tol=tol, abs_tol=tol * ATOL_PER_RTOL, eta=0.0, exponent=0.5)
        result = sample(guider, sampler, sigmas, noise, latent["samples"], seed=1)
        report = result.reports[0]
        rows.append(
            (
                tol,
                report["model_evaluations"],
                report["rejected"],
                float((result.samples - reference).abs().mean()) / scale,
            )
        )
    print(f"\n{name} on the tiny UNet vs lms 400 steps (mean |error| / mean |x|):")
    print("  tolerance  evaluations  rejected  error")
    for tol, evaluations, rejected, error in rows:
        print(f"  {tol:9g}  {evaluations:11d}  {rejected:8d}  {error:.2e}")
    assert rows[0][1] < rows[1][1] < rows[2][1]
    assert rows[0][3] > rows[1][3] > rows[2][3]
    assert rows[2][3] < rows[0][3] / 5
    assert rows[2][3] < 1e-3


def test_reports_reach_the_sampler_node_ui_text(model, positive, negative, executor):
    class Counting:
        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, apply, call):
            self.calls += 1
            return apply(call)

    counter = Counting()
    counted = model.with_wrapper(counter)
    out = sn.KSampler().run(counted, 1, 4, 5.0, "dpm_adaptive", "karras", positive, negative, empty(), 1.0)
    report = next(r for r in out.ui["weft_report"] if r["name"] == "dpm_adaptive")
    assert set(report) == {"name", "model_evaluations", "accepted", "rejected"}
    assert report["model_evaluations"] == counter.calls > 0
    line = (
        f"dpm_adaptive: model_evaluations={counter.calls}, accepted={report['accepted']}, rejected={report['rejected']}"
    )
    assert line in out.ui["text"]

    ggf = {
        "class_type": "SamplerGottaGoFast",
        "inputs": {
            "abs_tol": 0.0078,
            "rel_tol": 0.1,
            "safety": 0.9,
            "exponent": 0.9,
            "h_init": 0.01,
            "eta": 1.0,
            "s_noise": 1.0,
        },
    }
    text = run_prompt(executor, custom_prompt(ggf)).outputs["3"]["text"]
    assert len(text) == 1 and text[0].startswith("gotta_go_fast: model_evaluations=")
    text = run_prompt(executor, ksampler_prompt("dpm_adaptive")).outputs["3"]["text"]
    assert text[0].startswith("dpm_adaptive: model_evaluations=")


def test_sampler_dpm_adaptative_has_comfyui_inputs_and_validates(executor):
    schema = executor.registry["SamplerDPMAdaptative"].schema
    names = [spec.name for spec in schema.inputs]
    assert names == ["order", "rtol", "atol", "h_init", "pcoeff", "icoeff", "dcoeff", "accept_safety", "eta", "s_noise"]
    defaults = {spec.name: spec.options["default"] for spec in schema.inputs}
    assert defaults == {
        "order": 3,
        "rtol": 0.05,
        "atol": 0.0078,
        "h_init": 0.05,
        "pcoeff": 0.0,
        "icoeff": 1.0,
        "dcoeff": 0.0,
        "accept_safety": 0.81,
        "eta": 0.0,
        "s_noise": 1.0,
    }
    node = {"class_type": "SamplerDPMAdaptative", "inputs": {**defaults, "h_init": 0.0}}
    result = validate_prompt(custom_prompt(node), executor.registry, ["4"])
    assert not result.ok and "h_init" in str(result.node_errors["5"])
    node["inputs"]["h_init"] = 0.05
    run = run_prompt(executor, custom_prompt(node))
    assert run.outputs["3"]["text"][0].startswith("dpm_adaptive: ")
    for bad in ({"order": 4}, {"h_init": 0}):
        with pytest.raises(ValueError):
            DPMAdaptiveSampler(**bad)


@pytest.mark.parametrize(
    "sampler",
    [
        SamplerDPMAdaptative().run(3, 0.05, 0.0078, 0.05, 0.0, 1.0, 0.0, 0.81, 1.0, 1.0)[0],
        SamplerGottaGoFast().run(0.0078, 0.05, 0.9, 0.9, 0.01, 1.0, 1.0)[0],
    ],
    ids=["dpm_adaptive_eta1", "gotta_go_fast_sde"],
)
def test_seeds_reproduce_for_the_stochastic_variants(model, positive, negative, sampler):
    sigmas = compute_sigmas(model.scheduler_config, "karras", 4)

    def run(seed: int) -> torch.Tensor:
        return first_latent(
            sn.SamplerCustom().run(model, True, seed, 5.0, positive, negative, sampler, sigmas, empty(2))
        )["samples"]

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a[0], a[1])  # the images of a batch get different noise


def test_adaptive_samplers_use_only_the_ends_of_the_schedule(model, positive, negative):
    def run(sampler: object, scheduler: str, steps: int, ends_of: torch.Tensor | None = None) -> torch.Tensor:
        sigmas = compute_sigmas(model.scheduler_config, scheduler, steps)
        if ends_of is not None:  # the same first and last noise levels to the bit (float32 schedules differ by an ulp)
            sigmas[0], sigmas[-2] = ends_of[0], ends_of[-2]
        return first_latent(sn.SamplerCustom().run(model, True, 2, 5.0, positive, negative, sampler, sigmas, empty()))[
            "samples"
        ]

    karras = compute_sigmas(model.scheduler_config, "karras", 3)
    torch.testing.assert_close(
        run(DPMAdaptiveSampler(), "karras", 3), run(DPMAdaptiveSampler(), "exponential", 12, ends_of=karras)
    )
    # dpm_fast spends the step count, not the sigmas
    karras = compute_sigmas(model.scheduler_config, "karras", 5)
    torch.testing.assert_close(
        run(DPMFastSampler(), "karras", 5), run(DPMFastSampler(), "exponential", 5, ends_of=karras)
    )


def test_adaptive_sampling_keeps_the_unmasked_latent_and_reports_progress(model, positive, negative):
    from nodes.diffusion.latent import SetLatentNoiseMask

    g = torch.Generator().manual_seed(6)
    source = {"samples": torch.randn((1, 4, 8, 8), generator=g)}
    mask = torch.zeros((1, 64, 64))
    mask[:, 16:48, 16:48] = 1.0
    masked = SetLatentNoiseMask().run(source, mask)[0]
    guider = Guider(model, 5.0)
    guider.set_conds(positive, negative)
    noise = RandomNoiseSource(3).generate_noise(masked)
    sigmas = compute_sigmas(model.scheduler_config, "karras", 4)
    for sampler in (DPMAdaptiveSampler(), GottaGoFastSampler(rel_tol=0.05)):
        progress: list[tuple[int, int]] = []

        def on_step(done: int, total: int, _: object, progress: list = progress) -> None:
            progress.append((done, total))

        result = sample(
            guider,
            sampler,
            sigmas,
            noise,
            masked["samples"],
            denoise_mask=masked["noise_mask"],
            seed=3,
            on_step=on_step,
            wants_preview=lambda step: False,
        )
        out = result.samples
        assert torch.allclose(out[..., :1, :], source["samples"][..., :1, :])
        assert torch.allclose(out[..., :, 7:], source["samples"][..., :, 7:])
        assert float((out[..., 3:5, 3:5] - source["samples"][..., 3:5, 3:5]).abs().mean()) > 0.01
        assert [done for done, _ in progress] == list(range(1, len(progress) + 1))
        assert progress[-1][0] == progress[-1][1] == result.reports[0]["accepted"]
        assert all(done <= total for done, total in progress)
