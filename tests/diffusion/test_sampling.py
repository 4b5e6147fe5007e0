"""Sampling on a real (tiny, random-weight) SD1-layout UNet: every sampler and scheduler
Weft accepts runs, seeds reproduce, denoise/masks/KSamplerAdvanced behave as in ComfyUI."""

from __future__ import annotations

import math

import pytest
import torch

from engine import Executor, InterruptFlag, validate_prompt
from nodes.api import Input, Node, Output
from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.latent import LatentUpscaleBy, SetLatentNoiseMask
from nodes.diffusion.samplers import (
    SAMPLER_NAMES,
    SCHEDULER_NAMES,
    UNSUPPORTED_SAMPLERS,
    compute_sigmas,
    denoise_sigmas,
)
from nodes.registry import builtin_registry
from tests.support.tiny_unet import conditioning as _cond
from tests.support.tiny_unet import empty, ksample


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def positive():
    return _cond(1)


@pytest.fixture(scope="module")
def negative():
    return _cond(2)


@pytest.mark.parametrize("sampler_name", SAMPLER_NAMES)
def test_every_sampler_runs(model, positive, negative, sampler_name):
    scheduler = "normal" if sampler_name in ("lcm", "ddim") else "karras"
    out = ksample(model, positive, negative, empty(), sampler=sampler_name, scheduler=scheduler)
    assert out["samples"].shape == (1, 4, 8, 8)
    assert torch.isfinite(out["samples"]).all()


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_every_scheduler_runs(model, positive, negative, scheduler):
    sigmas = compute_sigmas(model.scheduler_config, scheduler, 2)
    assert sigmas[-1] == 0 and bool((sigmas[:-1] > 0).all()) and bool((sigmas[:-1] >= sigmas[1:]).all())
    out = ksample(model, positive, negative, empty(), scheduler=scheduler, sampler="dpmpp_2m")
    assert torch.isfinite(out["samples"]).all()


@pytest.mark.parametrize(
    "sampler_name", ["heun", "dpm_2", "uni_pc", "deis", "dpmpp_3m_sde", "lms", "dpmpp_sde", "dpmpp_2s_ancestral"]
)
def test_multistage_and_multistep_samplers_with_more_steps(model, positive, negative, sampler_name):
    out = ksample(model, positive, negative, empty(), sampler=sampler_name, steps=5, scheduler="simple")
    assert torch.isfinite(out["samples"]).all()


def test_lms_is_linear_multistep(model, positive, negative):
    from nodes.diffusion.samplers import lms_coefficients

    table = lms_coefficients([10.0, 5.0, 2.0, 1.0, 0.0], 4)
    assert table[0] == [-5.0]  # first step: Euler
    assert table[1] == pytest.approx([-3.9, 0.9])  # then variable-step Adams-Bashforth 2
    assert [len(row) for row in table] == [1, 2, 3, 4]
    one_euler = ksample(model, positive, negative, empty(), steps=1, sampler="euler")
    one_lms = ksample(model, positive, negative, empty(), steps=1, sampler="lms")
    assert torch.allclose(one_euler["samples"], one_lms["samples"])
    # a fourth-order method lands nearer the second-order Heun solution than Euler does
    euler, lms, heun = (
        ksample(model, positive, negative, empty(), steps=12, sampler=name)["samples"]
        for name in ("euler", "lms", "heun")
    )
    assert (lms - heun).abs().mean() < (euler - heun).abs().mean()


def test_own_samplers_agree_with_their_diffusers_relatives(model, positive, negative):
    # DDPM's posterior step between two noise levels is Euler ancestral's step in sigma space
    ddpm = ksample(model, positive, negative, empty(), steps=6, seed=3, sampler="ddpm")
    ancestral = ksample(model, positive, negative, empty(), steps=6, seed=3, sampler="euler_ancestral")
    assert torch.allclose(ddpm["samples"], ancestral["samples"], rtol=1e-4, atol=1e-2)
    # iPNDM starts with an Euler step and then, like LMS, tracks the higher-order solution
    one = [ksample(model, positive, negative, empty(), steps=1, sampler=name)["samples"] for name in ("euler", "ipndm")]
    assert torch.allclose(one[0], one[1])
    euler, ipndm, heun = (
        ksample(model, positive, negative, empty(), steps=12, sampler=name)["samples"]
        for name in ("euler", "ipndm", "heun")
    )
    assert (ipndm - heun).abs().mean() < (euler - heun).abs().mean()


def test_schedules_match_comfyui_conventions(model):
    cfg = model.scheduler_config
    karras = compute_sigmas(cfg, "karras", 10)
    assert len(karras) == 11
    assert math.isclose(float(karras[0]), 14.6146, rel_tol=1e-3)
    assert math.isclose(float(karras[-2]), 0.0292, rel_tol=1e-2)
    normal = compute_sigmas(cfg, "normal", 10)
    assert math.isclose(float(normal[0]), float(karras[0]), rel_tol=1e-4)
    # denoise < 1 takes the tail of a longer schedule (ComfyUI's img2img semantics)
    tail = denoise_sigmas(cfg, "normal", 6, 0.6)
    assert torch.allclose(tail, compute_sigmas(cfg, "normal", 10)[-7:])
    assert len(denoise_sigmas(cfg, "normal", 6, 0.0)) == 0


@pytest.mark.parametrize("sampler_name", ["euler_ancestral", "dpmpp_sde", "dpmpp_2m_sde"])
def test_same_seed_same_latent_and_seed_matters(model, positive, negative, sampler_name):
    a = ksample(model, positive, negative, empty(2), seed=7, sampler=sampler_name)
    b = ksample(model, positive, negative, empty(2), seed=7, sampler=sampler_name)
    c = ksample(model, positive, negative, empty(2), seed=8, sampler=sampler_name)
    assert torch.equal(a["samples"], b["samples"])
    assert not torch.allclose(a["samples"], c["samples"])
    # the two images of a batch get different noise
    assert not torch.allclose(a["samples"][0], a["samples"][1])


def test_batch_index_noise_matches_the_full_batch(model, positive, negative):
    from nodes.diffusion.latent import LatentFromBatch

    full = ksample(model, positive, negative, empty(3), seed=3)
    second = LatentFromBatch().run(empty(3), 1, 1)[0]
    one = ksample(model, positive, negative, second, seed=3)
    assert torch.allclose(one["samples"][0], full["samples"][1], atol=1e-2)  # batch-size float noise only
    assert not torch.allclose(one["samples"][0], full["samples"][0], atol=1e-2)


def test_img2img_denoise_keeps_structure(model, positive, negative):
    g = torch.Generator().manual_seed(5)
    source = {"samples": torch.randn((1, 4, 8, 8), generator=g)}
    weak = ksample(model, positive, negative, source, denoise=0.1, steps=4, sampler="euler")
    strong = ksample(model, positive, negative, source, denoise=1.0, steps=4, sampler="euler")
    d_weak = (weak["samples"] - source["samples"]).abs().mean()
    d_strong = (strong["samples"] - source["samples"]).abs().mean()
    assert 0 < d_weak < d_strong
    untouched = ksample(model, positive, negative, source, denoise=0.0)
    assert torch.equal(untouched["samples"], source["samples"])


@pytest.mark.parametrize("sampler_name", ["euler", "dpmpp_2m", "heun"])
def test_noise_mask_keeps_unmasked_latent(model, positive, negative, sampler_name):
    g = torch.Generator().manual_seed(6)
    source = {"samples": torch.randn((1, 4, 8, 8), generator=g)}
    mask = torch.zeros((1, 64, 64))
    mask[:, 16:48, 16:48] = 1.0
    masked = SetLatentNoiseMask().run(source, mask)[0]
    out = ksample(model, positive, negative, masked, steps=3, sampler=sampler_name)
    assert out["noise_mask"] is masked["noise_mask"]  # kept, as ComfyUI does (chained inpainting)
    assert torch.allclose(out["samples"][..., :1, :], source["samples"][..., :1, :])
    assert torch.allclose(out["samples"][..., :, 7:], source["samples"][..., :, 7:])
    inside = (out["samples"][..., 3:5, 3:5] - source["samples"][..., 3:5, 3:5]).abs().mean()
    assert inside > 0.01


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_ksampler_advanced_split_equals_full_run(model, positive, negative, name):
    adv = sn.KSamplerAdvanced()
    full = adv.run(model, "enable", 11, 4, 5.0, name, "karras", positive, negative, empty(), 0, 10000, "disable")[0]
    first = adv.run(model, "enable", 11, 4, 5.0, name, "karras", positive, negative, empty(), 0, 2, "enable")[0]
    second = adv.run(model, "disable", 11, 4, 5.0, name, "karras", positive, negative, first, 2, 10000, "disable")[0]
    assert torch.allclose(full["samples"], second["samples"], atol=1e-4)
    # leftover noise really is left over: the first half is far from the finished latent
    assert not torch.allclose(first["samples"], full["samples"], atol=1e-2)
    nothing = adv.run(model, "enable", 11, 4, 5.0, name, "karras", positive, negative, first, 4, 10000, "disable")[0]
    assert torch.equal(nothing["samples"], first["samples"])


def test_sampler_custom_advanced_matches_ksampler(model, positive, negative):
    noise = sn.RandomNoise().run(21)[0]
    guider = sn.CFGGuider().run(model, positive, negative, 6.0)[0]
    sampler = sn.KSamplerSelect().run("dpmpp_2m")[0]
    sigmas = sn.BasicScheduler().run(model, "karras", 3, 1.0)[0]
    out, denoised = sn.SamplerCustomAdvanced().run(noise, guider, sampler, sigmas, empty())
    ref = ksample(model, positive, negative, empty(), seed=21, steps=3, cfg=6.0, sampler="dpmpp_2m")
    assert torch.allclose(out["samples"], ref["samples"], atol=1e-5)
    assert torch.allclose(denoised["samples"], out["samples"], atol=1e-4)
    karras = sn.KarrasScheduler().run(3, 14.614642, 0.0291675, 7.0)[0]
    assert torch.allclose(karras, sigmas, rtol=1e-4)
    basic = sn.BasicGuider().run(model, positive)[0]
    off = sn.DisableNoise().run()[0]
    out2, _ = sn.SamplerCustomAdvanced().run(off, basic, sampler, sigmas, empty())
    assert torch.isfinite(out2["samples"]).all()


def test_sampled_latent_is_an_ordinary_tensor(model, positive, negative):
    out = ksample(model, positive, negative, empty())
    assert not out["samples"].is_inference()
    out["samples"].mul_(0.5)  # plugins edit latents in place; that must not raise


def test_cfg_one_skips_the_negative(model, positive, negative):
    a = ksample(model, positive, negative, empty(), cfg=1.0)
    b = ksample(model, positive, _cond(99), empty(), cfg=1.0)
    assert torch.equal(a["samples"], b["samples"])


def test_area_and_mask_conditioning(model, positive, negative):
    area = [[positive[0][0], {"pooled_output": None, "area": (4, 4, 0, 0), "strength": 1.0}]]
    masked = [[_cond(3)[0][0], {"pooled_output": None, "mask": torch.ones((1, 64, 64)), "mask_strength": 0.5}]]
    out = ksample(model, positive + area + masked, negative, empty())
    plain = ksample(model, positive, negative, empty())
    assert torch.isfinite(out["samples"]).all()
    assert not torch.allclose(out["samples"], plain["samples"])
    corner = torch.zeros((1, 64, 64))
    corner[:, :32, :32] = 1.0
    bounded = [[_cond(4)[0][0], {"pooled_output": None, "mask": corner, "set_area_to_bounds": True}]]
    out2 = ksample(model, positive + bounded, negative, empty())
    assert torch.isfinite(out2["samples"]).all() and not torch.allclose(out2["samples"], plain["samples"])


def test_unsupported_sampler_is_rejected_at_validation(model):
    registry = builtin_registry()
    # a ComfyUI name Weft still refuses (any name once it refuses none)
    refused = next(iter(UNSUPPORTED_SAMPLERS), "no_such_sampler")
    prompt = {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "2": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": refused}},
        "3": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    }
    result = validate_prompt(prompt, registry, ["2"])
    assert not result.ok
    error = result.node_errors["2"]["errors"][0]
    assert f"sampler_name '{refused}' is not available" in error["details"]
    # says why, not just "not in list"
    assert UNSUPPORTED_SAMPLERS.get(refused, "it is not a name Weft knows") in error["details"]
    ks = {
        "class_type": "KSampler",
        "inputs": {
            "model": ["9", 0],
            "seed": 1,
            "steps": 2,
            "cfg": 5.0,
            "sampler_name": "euler",
            "scheduler": "align_your_steps",
            "positive": ["8", 0],
            "negative": ["8", 0],
            "latent_image": ["1", 0],
            "denoise": 1.0,
        },
    }
    loader = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "none.safetensors"}}
    text = {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["9", 1]}}
    bad = validate_prompt({**prompt, "4": ks, "8": text, "9": loader}, registry, ["4"])
    assert "scheduler 'align_your_steps' is not available" in bad.node_errors["4"]["errors"][0]["details"]
    with pytest.raises(ValueError, match=f"sampler_name '{refused}' is not available"):
        sn.KSamplerSelect().run(refused)
    assert validate_prompt(prompt, registry, ["3"]).ok
    assert set(SAMPLER_NAMES) >= {
        "euler",
        "euler_ancestral",
        "heun",
        "dpm_2",
        "dpm_2_ancestral",
        "lms",
        "dpmpp_2m",
        "dpmpp_2m_sde",
        "dpmpp_3m_sde",
        "dpmpp_sde",
        "dpmpp_2s_ancestral",
        "ddim",
        "uni_pc",
        "uni_pc_bh2",
        "deis",
        "lcm",
    }


def test_user_errors_name_the_input(model, positive, negative):
    from nodes.diffusion.latent import LatentFromBatch

    with pytest.raises(IndexError, match="batch_index"):
        LatentFromBatch().run(empty(2), 5, 1)
    with pytest.raises(ValueError, match="latent_image"):
        ksample(model, positive, negative, {"samples": torch.zeros((1, 3, 8, 8))})
    with pytest.raises(ValueError, match="positive"):
        ksample(model, "not a conditioning", negative, empty())


def test_hires_fix_latent_upscale_then_second_pass(model, positive, negative):
    first = ksample(model, positive, negative, empty(), steps=2)
    bigger = LatentUpscaleBy().run(first, "nearest-exact", 1.5)[0]
    assert bigger["samples"].shape == (1, 4, 12, 12)
    second = ksample(model, positive, negative, bigger, steps=2, denoise=0.5)
    assert second["samples"].shape == (1, 4, 12, 12)
    assert torch.isfinite(second["samples"]).all()


# -- through the engine: progress, previews, interruption, caching ------------------------------------


class _TinyModel(Node):
    """Test-only source of the real tiny MODEL and CONDITIONING (until the loaders are wired in)."""

    name = "TestTinyModel"
    inputs = ()
    outputs = (Output("MODEL"), Output("CONDITIONING"), Output("CONDITIONING"))
    runs = 0
    values: tuple = ()

    def run(self):
        type(self).runs += 1
        return self.values


class _LatentMean(Node):
    name = "TestLatentMean"
    output_node = True
    inputs = (Input("samples", "LATENT"),)
    outputs = ()

    def run(self, samples):
        from nodes.api import Result

        return Result(ui={"mean": [float(samples["samples"].mean())]})


@pytest.fixture
def engine(model, positive, negative):
    _TinyModel.values = (model, positive, negative)
    registry = builtin_registry()
    registry.register(_TinyModel, pack="tests")
    registry.register(_LatentMean, pack="tests")
    return Executor(registry)


def _prompt(seed=1, steps=3, sampler="euler"):
    return {
        "1": {"class_type": "TestTinyModel", "inputs": {}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 5.0,
                "sampler_name": sampler,
                "scheduler": "karras",
                "positive": ["1", 1],
                "negative": ["1", 2],
                "latent_image": ["2", 0],
                "denoise": 1.0,
            },
        },
        "4": {"class_type": "TestLatentMean", "inputs": {"samples": ["3", 0]}},
    }


def _run(executor, prompt, **kwargs):
    result = validate_prompt(prompt, executor.registry, ["4"])
    assert result.ok, result.node_errors
    return executor.execute_sync("p", result.prompt, ["4"], order=result.order, **kwargs)


def test_progress_and_previews_every_step(engine):
    events = []
    run = _run(
        engine,
        _prompt(steps=3, sampler="heun"),
        emit=lambda e, d: events.append((e, d)),
        extra_data={"preview_method": "auto"},
    )
    assert run.status_str == "success"
    progress = [(d["value"], d["max"]) for e, d in events if e == "progress"]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    previews = [d for e, d in events if e == "preview"]
    assert len(previews) == 3
    assert previews[0]["data"][:2] == b"\xff\xd8" and previews[0]["node"] == "3"


def test_no_previews_unless_asked_for(engine):
    """ComfyUI's default: progress, but no preview frames without a preview_method."""
    events = []
    _run(engine, _prompt(steps=3, seed=4), emit=lambda e, d: events.append(e))
    assert events.count("preview") == 0 and events.count("progress") == 3


def test_preview_every_n_steps_and_off(engine):
    events = []
    _run(
        engine,
        _prompt(steps=4, seed=2),
        emit=lambda e, d: events.append(e),
        extra_data={"preview_every": 2, "preview_method": "latent2rgb"},
    )
    assert events.count("preview") == 2 and events.count("progress") == 4
    events.clear()
    _run(engine, _prompt(steps=4, seed=3), emit=lambda e, d: events.append(e), extra_data={"preview_method": "none"})
    assert events.count("preview") == 0 and events.count("progress") == 4


def test_interrupt_stops_between_steps(engine):
    flag = InterruptFlag()
    events = []

    def emit(event, data):
        events.append(event)
        if event == "progress":
            flag.set()

    run = _run(engine, _prompt(steps=10, seed=4), emit=emit, interrupt=flag)
    assert run.interrupted and not run.completed
    assert events.count("progress") == 1
    assert "execution_interrupted" in events


def test_changing_only_the_seed_reruns_only_the_sampler(engine):
    _TinyModel.runs = 0
    first = _run(engine, _prompt(seed=100))
    assert set(first.executed) >= {"1", "2", "3", "4"}
    again = _run(engine, _prompt(seed=100))
    assert again.executed == []
    changed = _run(engine, _prompt(seed=101))
    assert sorted(changed.executed) == ["3", "4"]
    assert set(changed.cached) >= {"1", "2"}
    assert _TinyModel.runs == 1
    assert first.outputs["4"]["mean"] != changed.outputs["4"]["mean"]


@pytest.mark.parametrize(
    "sampler_name,scheduler_class,extra",
    [
        ("euler", "EulerDiscreteScheduler", {"timestep_spacing": "linspace"}),
        ("heun", "HeunDiscreteScheduler", {"timestep_spacing": "linspace"}),
    ],
)
def test_loop_equals_a_bare_diffusers_loop(model, positive, negative, sampler_name, scheduler_class, extra):
    """KSampler (karras) gives what diffusers' own scheduler with Karras sigmas gives in the
    textbook pipeline loop, for the samplers still stepped by a diffusers scheduler (Euler, Heun),
    the UNet called as ComfyUI calls it: at the whole training timestep nearest each call's sigma
    (diffusers' loop passes the fractional one). (UniPC, DEIS, DPM2 and DPM-Solver++(2M) are
    ComfyUI's, not diffusers': tests/diffusion/test_unipc_deis.py, tests/diffusion/test_dpm_samplers.py.)"""
    import diffusers

    from nodes.diffusion.noise import seeded_noise
    from nodes.diffusion.samplers import model_sigmas
    from tests.support.comfy_timestep import comfy_timestep

    unet = model.prepare()
    scheduler = getattr(diffusers, scheduler_class).from_config(
        {**model.scheduler_config, "use_karras_sigmas": True, **extra}
    )
    scheduler.set_timesteps(6)
    # from pure noise: VE schedulers start at noise * sqrt(1 + sigma_max^2) (ComfyUI's choice;
    # diffusers' init_noise_sigma is that or sigma_max depending on the spacing)
    sigma_max = float(scheduler.sigmas[0])
    x = seeded_noise((1, 4, 8, 8), 1) * math.sqrt(1 + sigma_max**2)
    cond = torch.cat([negative[0][0], positive[0][0]])
    log_sigmas = model_sigmas(model.scheduler_config).log_sigmas
    with torch.inference_mode():
        for i, t in enumerate(scheduler.timesteps):
            whole = torch.tensor(float(comfy_timestep(float(scheduler.sigmas[i]), log_sigmas)))
            x_in = scheduler.scale_model_input(torch.cat([x, x]), t)
            out = unet(x_in, whole, encoder_hidden_states=cond).sample
            uncond_out, cond_out = out.chunk(2)
            x = scheduler.step(uncond_out + 5.0 * (cond_out - uncond_out), t, x).prev_sample
    reference = x / 0.18215
    ours = ksample(model, positive, negative, empty(), seed=1, steps=6, cfg=5.0, sampler=sampler_name)["samples"]
    assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-3)


def test_latent_nodes_follow_comfyui():
    from nodes.diffusion.latent import LatentFromBatch, LatentUpscale, RepeatLatentBatch

    latent = {"samples": torch.arange(2 * 4 * 8 * 16, dtype=torch.float32).reshape(2, 4, 8, 16)}
    assert LatentUpscale().run(latent, "bilinear", 256, 0, "disabled")[0]["samples"].shape == (2, 4, 16, 32)
    assert LatentUpscale().run(latent, "area", 64, 64, "center")[0]["samples"].shape == (2, 4, 8, 8)
    assert LatentUpscale().run(latent, "bicubic", 0, 0, "disabled")[0]["samples"] is latent["samples"]
    mask = torch.zeros((2, 64, 128))
    mask[1] = 1
    masked = SetLatentNoiseMask().run(latent, mask)[0]
    assert masked["noise_mask"].shape == (2, 1, 64, 128)
    picked = LatentFromBatch().run(masked, 1, 5)[0]
    assert picked["samples"].shape[0] == 1 and picked["batch_index"] == [1]
    assert float(picked["noise_mask"].mean()) == 1.0
    repeated = RepeatLatentBatch().run(picked, 3)[0]
    assert repeated["samples"].shape[0] == 3 and repeated["batch_index"] == [1, 2, 3]
    assert torch.equal(repeated["samples"][2], latent["samples"][1])
    with pytest.raises(ValueError, match="mask"):
        SetLatentNoiseMask().run(latent, torch.zeros(4))
    with pytest.raises(ValueError, match="samples"):
        LatentUpscale().run({"no": 1}, "bilinear", 64, 64, "disabled")


def test_sampler_custom_and_split_sigmas(model, positive, negative):
    sampler = sn.KSamplerSelect().run("euler")[0]
    sigmas = sn.BasicScheduler().run(model, "karras", 4, 1.0)[0]
    out, _ = sn.SamplerCustom().run(model, True, 9, 5.0, positive, negative, sampler, sigmas, empty())
    ref = ksample(model, positive, negative, empty(), seed=9, steps=4, cfg=5.0, sampler="euler")
    assert torch.allclose(out["samples"], ref["samples"], atol=1e-4)
    high, low = sn.SplitSigmas().run(sigmas, 2)
    assert len(high) == 3 and len(low) == 3 and high[-1] == low[0]
    first, _ = sn.SamplerCustom().run(model, True, 9, 5.0, positive, negative, sampler, high, empty())
    second, _ = sn.SamplerCustom().run(model, False, 9, 5.0, positive, negative, sampler, low, first)
    assert torch.allclose(second["samples"], ref["samples"], atol=1e-2)
