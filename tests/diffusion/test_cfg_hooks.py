"""The loop's general hooks on a real tiny UNet: ComfyUI-style guidance functions, samplers
with their own loop, and the per-run protocol (begin_run/report)."""

from __future__ import annotations

import pytest
import torch

from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.cfg_hooks import CFG, POST_CFG, PRE_CFG
from nodes.diffusion.guidance import Guider
from nodes.diffusion.noise import RandomNoiseSource
from nodes.diffusion.samplers import SAMPLERS, compute_sigmas
from nodes.diffusion.sampling import sample
from tests.support.tiny_unet import empty, ksample


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def positive(tiny_positive):
    return tiny_positive


@pytest.fixture(scope="module")
def negative(tiny_negative):
    return tiny_negative


def _plain_cfg(args):
    return args["uncond"] + (args["cond"] - args["uncond"]) * args["cond_scale"]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("sampler", ["euler", "ddim", "heun"])
def test_a_cfg_function_computing_cfg_equals_plain_cfg(model, positive, negative, prediction_type, sampler):
    base = model.clone(prediction_type=prediction_type)
    hooked = base.with_guidance_hook(CFG, _plain_cfg)
    plain = ksample(base, positive, negative, empty(), steps=4, sampler=sampler)["samples"]
    through = ksample(hooked, positive, negative, empty(), steps=4, sampler=sampler)["samples"]
    torch.testing.assert_close(through, plain, rtol=1e-4, atol=1e-4)


def test_identity_pre_and_post_hooks_leave_the_picture(model, positive, negative):
    calls = []

    def pre(args):
        calls.append(("pre", float(args["sigma"][0])))
        assert args["input"].shape == args["conds_out"][0].shape
        return args["conds_out"]

    def post(args):
        calls.append(("post", float(args["sigma"][0])))
        return args["denoised"]

    hooked = model.with_guidance_hook(PRE_CFG, pre).with_guidance_hook(POST_CFG, post)
    plain = ksample(model, positive, negative, empty(), steps=3)["samples"]
    through = ksample(hooked, positive, negative, empty(), steps=3)["samples"]
    torch.testing.assert_close(through, plain, rtol=1e-4, atol=1e-4)
    assert [c[0] for c in calls] == ["pre", "post"] * 3
    sigmas = [c[1] for c in calls[::2]]
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[0] > 1.0


def test_a_hook_changes_the_picture_and_sees_the_positive_under_another_model(model, positive, negative):
    seen = []

    def post(args):
        other = args["weft_predict_cond"](args["model"])
        seen.append(float((other - args["cond_denoised"]).abs().max()))
        return args["denoised"] * 0.5

    hooked = model.with_guidance_hook(POST_CFG, post)
    plain = ksample(model, positive, negative, empty(), steps=2)["samples"]
    changed = ksample(hooked, positive, negative, empty(), steps=2)["samples"]
    assert not torch.allclose(plain, changed)
    assert max(seen) < 1e-4  # the same model on the same input gives the same positive prediction


def test_comfyui_patcher_methods_set_the_hooks_on_the_clone_only(model):
    clone = model.clone()
    clone.set_model_sampler_cfg_function(_plain_cfg, disable_cfg1_optimization=True)
    clone.set_model_sampler_post_cfg_function(lambda a: a["denoised"])
    assert CFG in clone.model_options and len(clone.model_options[POST_CFG]) == 1
    assert CFG not in model.model_options and POST_CFG not in model.model_options


class _OwnEuler:
    """A SAMPLER with its own loop (k-diffusion's Euler), for the loop hook."""

    def __init__(self):
        self.began = None

    def begin_run(self, sigmas):
        self.began = len(sigmas)

    def report(self):
        return {"name": "own euler", "began": self.began}

    def sample_loop(self, run):
        x = run.x
        for i in range(run.steps):
            s, s_next = float(run.sigmas[i]), float(run.sigmas[i + 1])
            denoised = run.denoise(x, s)
            x = x + (x - denoised) / s * (s_next - s)
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)


def test_a_sampler_with_its_own_loop_matches_the_builtin_euler(model, positive, negative):
    sigmas = compute_sigmas(model.scheduler_config, "karras", 5)
    latent = empty()
    noise = RandomNoiseSource(3).generate_noise(latent)
    guider = Guider(model, 5.0)
    guider.set_conds(positive, negative)
    own = _OwnEuler()
    ours = sample(guider, own, sigmas, noise, latent["samples"], seed=3)
    builtin = sample(guider, SAMPLERS["euler"], sigmas, noise, latent["samples"], seed=3)
    torch.testing.assert_close(ours.samples, builtin.samples, rtol=1e-4, atol=1e-4)
    assert ours.reports == [{"name": "own euler", "began": 6}]


def test_wrappers_take_part_in_the_run_protocol(model, positive, negative):
    class Counting:
        def __init__(self):
            self.calls, self.runs = 0, 0

        def begin_run(self, sigmas):
            self.runs += 1
            self.calls = 0

        def report(self):
            return {"name": "counting", "unet_calls": self.calls}

        def __call__(self, apply, call):
            self.calls += 1
            return apply(call)

    wrapper = Counting()
    patched = model.with_wrapper(wrapper)
    guider = Guider(patched, 5.0)
    guider.set_conds(positive, negative)
    latent = empty()
    noise = RandomNoiseSource(1).generate_noise(latent)
    for _ in range(2):
        result = sample(
            guider, SAMPLERS["euler"], compute_sigmas(model.scheduler_config, "normal", 4), noise, latent["samples"]
        )
    assert wrapper.runs == 2
    assert result.reports == [{"name": "counting", "unet_calls": 4}]
    out = sn.SamplerCustomAdvanced().run(
        RandomNoiseSource(1), guider, SAMPLERS["euler"], compute_sigmas(model.scheduler_config, "normal", 4), latent
    )
    assert out.outputs[0]["samples"].shape == latent["samples"].shape
    assert out.ui == {"text": ["counting: unet_calls=4"], "weft_report": [{"name": "counting", "unet_calls": 4}]}
