"""ComfyUI's SIGMAS nodes (nodes/sigma_schedules.py, nodes/sigma_ops.py) and KSampler's
linear_quadratic scheduler: each schedule against its formula written out here, against values
ComfyUI 0.8.0 computes, and through the engine into SamplerCustomAdvanced on the tiny checkpoint.

The ``COMFY_*`` constants were computed once with ComfyUI 0.8.0's own functions
(comfy/k_diffusion/sampling.py, comfy/samplers.py, comfy/model_sampling.py,
comfy_extras/nodes_align_your_steps.py and nodes_custom_sampler.py, lifted from its source by a
throwaway script with numpy/scipy, ComfyUI's default SD1 ``ModelSamplingDiscrete``), printed to
7 significant digits and pasted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from engine import Executor, normalise_prompt, validate_prompt
from nodes import sigma_ops as ops
from nodes import sigma_schedules as sch
from nodes.diffusion.schedules import SCHEDULER_NAMES, UNSUPPORTED_SCHEDULERS, compute_sigmas, model_sigmas
from nodes.diffusion.types import default_scheduler_config

CONFIG = default_scheduler_config("sd1", "epsilon")
SMAX, SMIN = 14.614642, 0.0291675

# ComfyUI 0.8.0's values (see the module docstring)
COMFY_EXPONENTIAL_5 = [14.61464, 3.088986, 0.6528956, 0.1379976, 0.0291675, 0.0]
COMFY_POLYEXPONENTIAL_5_RHO2 = [14.61464, 0.9629123, 0.1379976, 0.04301722, 0.0291675, 0.0]
COMFY_VP_5 = [152.167, 17.04912, 3.422245, 0.9575265, 0.01048599, 0.0]
COMFY_LAPLACE_6_MU05_BETA07 = [14.61464, 3.131105, 1.927438, 1.410308, 0.8681542, 0.0291675]
COMFY_LINEAR_QUADRATIC_7 = [14.61464, 14.49285, 14.37106, 14.24928, 13.26735, 10.56517, 6.142716, 0.0]
COMFY_BETA_8 = [14.61464, 10.48347, 5.686592, 2.963613, 1.618279, 0.9198333, 0.5153906, 0.2432698, 0.0]
COMFY_BETA_6_A2_B05 = [14.61464, 13.59652, 10.84284, 7.485421, 4.411077, 2.15049, 0.0]
COMFY_AYS_SD1_7 = [14.61464, 5.189446, 2.836968, 1.7289, 1.071424, 0.6078478, 0.2291421, 0.0]
COMFY_AYS_SDXL_14_HALF = [0.8620721, 0.6294696, 0.4717897, 0.3542882, 0.250067, 0.1529187, 0.07597215, 0.0]
COMFY_SD_TURBO_3 = [14.61464, 8.302803, 5.087763, 0.0]
COMFY_SD_TURBO_2_HALF = [1.612886, 1.160578, 0.0]
COMFY_EXTEND_3_COSINE_FROM_2_5 = [14.6, 10.8, 8.018208, 7.0, 5.0, 3.535899, 3.0, 2.0, 1.267949, 1.0, 0.0]
COMFY_EXTEND_2_SINE_BELOW_8 = [14.6, 7.0, 5.828427, 3.0, 2.414214, 1.0, 0.7071068, 0.0]
COMFY_PERCENT_TO_SIGMA = {0.25: 4.086081, 0.5: 1.61558}

#: the formulas' own rounding (float32 results) and ComfyUI's training sigmas, which it computes from
#: float64 betas where diffusers (Weft's source) uses float32 ones
FORMULA_TOL = {"rtol": 2e-6, "atol": 1e-7}
MODEL_TOL = {"rtol": 3e-5, "atol": 1e-6}


def close(got: torch.Tensor, expected: list[float], tol: dict[str, float]) -> None:
    assert got.dtype == torch.float32 and got.dim() == 1
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float32), **tol)


# -- formulas -----------------------------------------------------------------------------------
def test_exponential_is_even_in_log_sigma() -> None:
    got = sch.ExponentialScheduler().run(5, SMAX, SMIN)[0]
    logs = [math.log(SMAX) + (math.log(SMIN) - math.log(SMAX)) * i / 4 for i in range(5)]
    close(got, [math.exp(v) for v in logs] + [0.0], FORMULA_TOL)
    close(got, COMFY_EXPONENTIAL_5, FORMULA_TOL)


def test_polyexponential_follows_ramp_to_the_rho() -> None:
    got = sch.PolyexponentialScheduler().run(5, SMAX, SMIN, 2.0)[0]
    ramp = [(1 - i / 4) ** 2 for i in range(5)]
    close(got, [math.exp(r * (math.log(SMAX) - math.log(SMIN)) + math.log(SMIN)) for r in ramp] + [0.0], FORMULA_TOL)
    close(got, COMFY_POLYEXPONENTIAL_5_RHO2, FORMULA_TOL)
    # rho 1 is the exponential schedule
    close(sch.PolyexponentialScheduler().run(7, 3.0, 0.5, 1.0)[0], sch.exponential(7, 0.5, 3.0).tolist(), FORMULA_TOL)


def test_vp_is_the_continuous_variance_preserving_schedule() -> None:
    got = sch.VPScheduler().run(5, 19.9, 0.1, 0.001)[0]
    ts = [1 + (0.001 - 1) * i / 4 for i in range(5)]
    close(got, [math.sqrt(math.expm1(19.9 * t * t / 2 + 0.1 * t)) for t in ts] + [0.0], FORMULA_TOL)
    close(got, COMFY_VP_5, FORMULA_TOL)


def test_laplace_is_clamped_and_ends_at_its_lowest_sigma_not_zero() -> None:
    got = sch.LaplaceScheduler().run(6, SMAX, SMIN, 0.5, 0.7)[0]

    def level(x: float) -> float:
        lmb = 0.5 - 0.7 * math.copysign(1.0, 0.5 - x) * math.log(1 - 2 * abs(0.5 - x) + 1e-5)
        return min(max(math.exp(lmb), SMIN), SMAX)

    close(got, [level(i / 5) for i in range(6)], FORMULA_TOL)
    close(got, COMFY_LAPLACE_6_MU05_BETA07, FORMULA_TOL)
    assert len(got) == 6 and float(got[-1]) == pytest.approx(SMIN)


def test_align_your_steps_uses_the_published_levels_and_log_linear_interpolation() -> None:
    # 10 steps: the published table itself, its last level replaced by 0
    got = sch.AlignYourStepsScheduler().run("SD1", 10, 1.0)[0]
    close(got, list(sch.AYS_NOISE_LEVELS["SD1"][:-1]) + [0.0], FORMULA_TOL)
    # another step count: interpolated linearly in log sigma between the table's evenly spread points
    table = sch.AYS_NOISE_LEVELS["SD1"]
    expected = []
    for i in range(8):
        pos = (7 - i) / 7 * 10  # position on the ascending table's 0..10 axis
        lo = min(int(pos), 9)
        up, down = math.log(table[10 - lo]), math.log(table[10 - lo - 1])
        expected.append(math.exp(up + (down - up) * (pos - lo)))
    got = sch.AlignYourStepsScheduler().run("SD1", 7, 1.0)[0]
    close(got, expected[:-1] + [0.0], FORMULA_TOL)
    close(got, COMFY_AYS_SD1_7, FORMULA_TOL)
    # denoise keeps the last round(steps * denoise) steps of the whole schedule
    half = sch.AlignYourStepsScheduler().run("SDXL", 14, 0.5)[0]
    close(half, COMFY_AYS_SDXL_14_HALF, FORMULA_TOL)
    full = sch.align_your_steps("SDXL", 14)
    torch.testing.assert_close(half[:-1], full[-8:-1])
    assert sch.AlignYourStepsScheduler().run("SD1", 10, 0.0)[0].numel() == 0


def test_sd_turbo_takes_the_models_sigmas_at_its_timesteps() -> None:
    class Model:
        scheduler_config = CONFIG

    ms = model_sigmas(CONFIG)
    got = sch.SDTurboScheduler().run(Model(), 3, 1.0)[0]
    close(got, [float(ms.sigmas[t]) for t in (999, 899, 799)] + [0.0], {"rtol": 1e-6, "atol": 0})
    close(got, COMFY_SD_TURBO_3, MODEL_TOL)
    close(sch.SDTurboScheduler().run(Model(), 2, 0.5)[0], COMFY_SD_TURBO_2_HALF, MODEL_TOL)  # from timestep 499


def test_beta_sampling_scheduler_is_the_beta_scheduler_with_its_parameters() -> None:
    class Model:
        scheduler_config = CONFIG

    got = sch.BetaSamplingScheduler().run(Model(), 8, 0.6, 0.6)[0]
    torch.testing.assert_close(got, compute_sigmas(CONFIG, "beta", 8))
    close(got, COMFY_BETA_8, MODEL_TOL)
    close(sch.BetaSamplingScheduler().run(Model(), 6, 2.0, 0.5)[0], COMFY_BETA_6_A2_B05, MODEL_TOL)
    assert "alpha must be above 0" in sch.BetaSamplingScheduler.validate(alpha=0.0, beta=0.6)


def test_log_spaced_schedulers_refuse_a_zero_sigma_at_validation() -> None:
    assert "sigma_min must be above 0" in sch.ExponentialScheduler.validate(steps=4, sigma_max=14.6, sigma_min=0.0)
    assert "sigma_max must be above 0" in sch.PolyexponentialScheduler.validate(sigma_max=0.0, sigma_min=0.1)
    assert sch.ExponentialScheduler.validate(steps=4, sigma_max=14.6, sigma_min=0.03) is True


# -- KSampler's scheduler combo -----------------------------------------------------------------
def test_linear_quadratic_is_a_scheduler_like_comfyuis() -> None:
    assert SCHEDULER_NAMES[-3:] == ("normal", "linear_quadratic", "kl_optimal")  # ComfyUI's order
    assert "linear_quadratic" not in UNSUPPORTED_SCHEDULERS
    assert "AlignYourStepsScheduler" in UNSUPPORTED_SCHEDULERS["align_your_steps"]
    n, smax = 7, float(model_sigmas(CONFIG).sigma_max)
    linear, threshold = n // 2, 0.025
    step_diff = linear - threshold * n
    q = step_diff / (linear * (n - linear) ** 2)
    lin = threshold / linear - 2 * step_diff / (n - linear) ** 2
    drops = [i * threshold / linear for i in range(linear)] + [
        q * i * i + lin * i + q * linear**2 for i in range(linear, n)
    ]
    got = compute_sigmas(CONFIG, "linear_quadratic", n)
    close(got, [(1 - d) * smax for d in drops] + [0.0], FORMULA_TOL)
    close(got, COMFY_LINEAR_QUADRATIC_7, MODEL_TOL)
    close(compute_sigmas(CONFIG, "linear_quadratic", 1), [smax, 0.0], FORMULA_TOL)


# -- operations on SIGMAS -----------------------------------------------------------------------
SIGMAS = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.0])


def test_split_sigmas_denoise_keeps_the_last_round_steps_times_denoise() -> None:
    high, low = ops.SplitSigmasDenoise().run(SIGMAS, 0.6)  # round(4 * 0.6) = 2 low steps
    assert high.tolist() == pytest.approx([14.6, 7.0, 3.0]) and low.tolist() == pytest.approx([3.0, 1.0, 0.0])
    high, low = ops.SplitSigmasDenoise().run(SIGMAS, 0.1)  # 0 low steps: ComfyUI's empty high part
    assert high.numel() == 0 and low.tolist() == [0.0]
    high, low = ops.SplitSigmasDenoise().run(SIGMAS, 1.0)
    assert high.tolist() == pytest.approx([14.6]) and torch.equal(low, SIGMAS)


def test_flip_sigmas_reverses_and_lifts_a_leading_zero() -> None:
    flipped = ops.FlipSigmas().run(SIGMAS)[0]
    assert flipped.tolist() == pytest.approx([0.0001, 1.0, 3.0, 7.0, 14.6])
    assert float(SIGMAS[-1]) == 0.0  # the input is not changed
    assert ops.FlipSigmas().run(torch.tensor([1.0, 2.0]))[0].tolist() == [2.0, 1.0]
    assert ops.FlipSigmas().run(torch.zeros(0))[0].numel() == 0


def test_set_first_sigma_changes_a_copy() -> None:
    got = ops.SetFirstSigma().run(SIGMAS, 136.0)[0]
    assert got.tolist() == pytest.approx([136.0, 7.0, 3.0, 1.0, 0.0]) and float(SIGMAS[0]) == pytest.approx(14.6)
    with pytest.raises(ValueError, match="'sigmas' is empty"):
        ops.SetFirstSigma().run(torch.zeros(0), 1.0)


def test_extend_intermediate_sigmas_inserts_levels_in_the_window() -> None:
    got = ops.ExtendIntermediateSigmas().run(SIGMAS, 3, -1.0, 2.5, "cosine")[0]
    # after each level in [2.5, inf): two more at sin(pi/2 * k/3) of the way to the next level
    expected: list[float] = []
    for a, b in zip(SIGMAS.tolist()[:-1], SIGMAS.tolist()[1:], strict=True):
        expected.append(a)
        if a >= 2.5:
            expected += [a + math.sin(math.pi / 2 * k / 3) * (b - a) for k in (1, 2)]
    close(got, expected + [0.0], {"rtol": 1e-6, "atol": 1e-6})
    close(got, COMFY_EXTEND_3_COSINE_FROM_2_5, {"rtol": 1e-6, "atol": 1e-6})
    close(ops.ExtendIntermediateSigmas().run(SIGMAS, 2, 8.0, 0.0, "sine")[0], COMFY_EXTEND_2_SINE_BELOW_8, FORMULA_TOL)
    assert torch.equal(ops.ExtendIntermediateSigmas().run(SIGMAS, 1, -1.0, 0.0, "linear")[0], SIGMAS)


def test_sampling_percent_to_sigma() -> None:
    class Model:
        scheduler_config = CONFIG

    ms = model_sigmas(CONFIG)
    node = ops.SamplingPercentToSigma()
    for percent, expected in COMFY_PERCENT_TO_SIGMA.items():
        got = node.run(Model(), percent, False)[0]
        assert isinstance(got, float)
        assert got == pytest.approx(float(ms.t_to_sigma(torch.tensor((1 - percent) * 999.0))), rel=1e-6)
        assert got == pytest.approx(expected, rel=3e-5)
    assert node.run(Model(), 0.0, False)[0] == 999999999.9 and node.run(Model(), 1.0, False)[0] == 0.0
    assert node.run(Model(), 0.0, True)[0] == ms.sigma_max and node.run(Model(), 1.0, True)[0] == ms.sigma_min


def test_manual_sigmas_reads_every_number() -> None:
    got = ops.ManualSigmas().run("14.6, 7 ,3.5;1e0 x -0.5")[0]
    assert got.dtype == torch.float32 and got.tolist() == pytest.approx([14.6, 7.0, 3.5, 1.0, 0.0, -0.5])


# -- through the engine ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registry() -> Any:
    from nodes.registry import builtin_registry

    return builtin_registry()


def _read_latent(home: Any, result: Any, node: str) -> torch.Tensor:
    from safetensors.torch import load_file

    saved = result.outputs[node]["latents"][0]
    return load_file(str(Path(home.output) / saved["subfolder"] / saved["filename"]))["latent_tensor"]


@pytest.mark.parametrize(
    ("node", "inputs"),
    [
        ("ExponentialScheduler", {"steps": 3, "sigma_max": 14.614642, "sigma_min": 0.0291675}),
        ("PolyexponentialScheduler", {"steps": 3, "sigma_max": 14.614642, "sigma_min": 0.0291675, "rho": 1.5}),
        ("VPScheduler", {"steps": 3, "beta_d": 19.9, "beta_min": 0.1, "eps_s": 0.001}),
        ("LaplaceScheduler", {"steps": 3, "sigma_max": 14.614642, "sigma_min": 0.0291675, "mu": 0.0, "beta": 0.5}),
        ("SDTurboScheduler", {"model": ["ckpt", 0], "steps": 2, "denoise": 1.0}),
        ("BetaSamplingScheduler", {"model": ["ckpt", 0], "steps": 3, "alpha": 0.6, "beta": 0.6}),
        ("AlignYourStepsScheduler", {"model_type": "SD1", "steps": 3, "denoise": 1.0}),
        ("ManualSigmas", {"sigmas": "14.6, 3, 0.5, 0"}),
    ],
)
def test_each_scheduler_node_drives_sampler_custom_advanced(registry, model_home, node, inputs) -> None:
    prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd1.safetensors"}},
        "text": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red square", "clip": ["ckpt", 1]}},
        "sigmas": {"class_type": node, "inputs": inputs},
        "ext": {
            "class_type": "ExtendIntermediateSigmas",
            "inputs": {
                "sigmas": ["sigmas", 0],
                "steps": 2,
                "start_at_sigma": -1.0,
                "end_at_sigma": 5.0,
                "spacing": "linear",
            },
        },
        "split": {"class_type": "SplitSigmasDenoise", "inputs": {"sigmas": ["ext", 0], "denoise": 1.0}},
        "flip": {"class_type": "FlipSigmas", "inputs": {"sigmas": ["split", 1]}},
        "first": {"class_type": "SetFirstSigma", "inputs": {"sigmas": ["flip", 0], "sigma": 0.5}},
        "unflip": {"class_type": "FlipSigmas", "inputs": {"sigmas": ["first", 0]}},
        "noise": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
        "guider": {"class_type": "BasicGuider", "inputs": {"model": ["ckpt", 0], "conditioning": ["text", 0]}},
        "sampler": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "empty": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "sca": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["noise", 0],
                "guider": ["guider", 0],
                "sampler": ["sampler", 0],
                "sigmas": ["split", 1],
                "latent_image": ["empty", 0],
            },
        },
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sca", 0], "filename_prefix": "sigmas/t"}},
        "save_flip": {
            "class_type": "SaveLatent",
            "inputs": {"samples": ["noise_back", 0], "filename_prefix": "sigmas/flip"},
        },
        "noise_back": {
            "class_type": "AddNoise",
            "inputs": {
                "model": ["ckpt", 0],
                "noise": ["noise", 0],
                "sigmas": ["unflip", 0],
                "latent_image": ["sca", 0],
            },
        },
    }
    checked = validate_prompt(normalise_prompt(prompt), registry)
    assert checked.ok, checked.node_errors
    result = Executor(registry).execute_sync("p", checked.prompt, checked.outputs, order=checked.order)
    assert result.status_str == "success", result.error
    samples = _read_latent(model_home, result, "save")
    assert samples.shape == (1, 4, 8, 8) and torch.isfinite(samples).all()
    assert samples.abs().max() > 0  # the sampler ran (an empty latent stays 0 otherwise)
    assert torch.isfinite(_read_latent(model_home, result, "save_flip")).all()


def test_the_engine_refuses_a_zero_sigma_min_naming_the_input(registry) -> None:
    prompt = {"s": {"class_type": "ExponentialScheduler", "inputs": {"steps": 3, "sigma_max": 14.6, "sigma_min": 0.0}}}
    checked = validate_prompt(normalise_prompt(prompt), registry, ["s"])
    assert not checked.ok
    assert "sigma_min must be above 0" in str(checked.node_errors)
