"""DeepCache and FasterDiffusion as MODEL patches in real sampling runs (tiny SD1/SDXL UNets,
the project's sampling loop): interval 1 changes nothing, interval N runs the full UNet every
N-th call (counted by the run protocol's report), the noise window, one cache per batch, reset
between runs with or without ``begin_run``, ControlNet, SDXL, and a prompt through the engine."""

from __future__ import annotations

import math

import pytest
import torch

from nodes.acceleration.deepcache import DeepCache, DeepCacheWrapper
from nodes.acceleration.faster_diffusion import FasterDiffusion, FasterDiffusionWrapper
from nodes.diffusion.control import Control, percent_to_sigma
from nodes.diffusion.guidance import Guider
from nodes.diffusion.sampler_nodes import KSamplerSelect
from nodes.diffusion.samplers import compute_sigmas
from nodes.diffusion.sampling import sample

CROSS_DIM = {"sd1": 32, "sdxl": 96}


def conditioning(family: str, seed: int, control: Control | None = None) -> list:
    g = torch.Generator().manual_seed(seed)
    options = {"pooled_output": torch.randn((1, 32), generator=g) if family == "sdxl" else None}
    if control is not None:
        options["control"] = control
    return [[torch.randn((1, 77, CROSS_DIM[family]), generator=g), options]]


def run(
    model,
    steps: int,
    *,
    cfg: float = 5.0,
    seed: int = 0,
    batch: int = 1,
    size: int = 8,
    sampler: str = "euler",
    scheduler: str = "normal",
    control: Control | None = None,
) -> torch.Tensor:
    family = model.family
    guider = Guider(model, cfg)
    guider.set_conds(conditioning(family, 1, control), conditioning(family, 2, control))
    sigmas = compute_sigmas(model.scheduler_config, scheduler, steps)
    noise = torch.randn((batch, 4, size, size), generator=torch.Generator().manual_seed(seed))
    return sample(guider, KSamplerSelect().run(sampler)[0], sigmas, noise, torch.zeros_like(noise)).samples


def deepcache(model, interval: int, depth: int = 3, start: float = 0.0, end: float = 1.0):
    patched = DeepCache().run(model, interval, depth, start, end)[0]
    return patched, patched.wrappers[-1]


def faster(model, interval: int, start: float = 0.0, end: float = 1.0):
    patched = FasterDiffusion().run(model, interval, start, end)[0]
    return patched, patched.wrappers[-1]


ACCELERATORS = {"DeepCache": deepcache, "FasterDiffusion": faster}


def relative_error(got: torch.Tensor, reference: torch.Tensor) -> float:
    return float((got - reference).norm() / reference.norm())


# -- the brief's four -------------------------------------------------------------------------------
def test_deepcache_interval_1_equals_the_uncached_run(make_model):
    model = make_model("sd1")
    patched, wrapper = deepcache(model, 1)
    expected = run(model, 6)
    got = run(patched, 6)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert wrapper.report() == {"name": "DeepCache", "unet_calls": 6, "full_calls": 6, "shallow_calls": 0}


@pytest.mark.parametrize("steps", [10, 12])
def test_deepcache_interval_3_calls_the_full_unet_about_a_third_as_often(make_model, steps):
    patched, wrapper = deepcache(make_model("sd1"), 3)
    run(patched, steps)
    report = wrapper.report()
    assert report["unet_calls"] == steps  # cond and uncond share one batched call per step
    assert report["full_calls"] == math.ceil(steps / 3)
    assert report["shallow_calls"] == steps - math.ceil(steps / 3)


def test_faster_diffusion_interval_1_equals_the_uncached_run(make_model):
    model = make_model("sd1")
    patched, wrapper = faster(model, 1)
    torch.testing.assert_close(run(patched, 6), run(model, 6), rtol=0, atol=1e-6)
    assert wrapper.report() == {"name": "FasterDiffusion", "unet_calls": 6, "full_calls": 6, "decoder_only_calls": 0}


@pytest.mark.parametrize("steps", [10, 12])
def test_faster_diffusion_interval_3_calls_the_full_unet_about_a_third_as_often(make_model, steps):
    patched, wrapper = faster(make_model("sd1"), 3)
    run(patched, steps)
    report = wrapper.report()
    assert (report["unet_calls"], report["full_calls"]) == (steps, math.ceil(steps / 3))
    assert report["decoder_only_calls"] == steps - math.ceil(steps / 3)


@pytest.mark.parametrize("name", ACCELERATORS)
@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_interval_3_on_20_steps_differs_from_the_full_run_but_stays_close(make_model, name, family):
    model = make_model(family)
    reference = run(model, 20)
    patched, wrapper = ACCELERATORS[name](model, 3)
    got = run(patched, 20)
    error = relative_error(got, reference)
    print(f"{name} {family} interval 3, 20 euler steps: relative error {error:.4f} ({wrapper.report()})")
    assert 1e-5 < error < 0.5


# -- windows, slots, runs ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ACCELERATORS)
def test_only_calls_inside_the_window_use_the_cache(make_model, name):
    model = make_model("sd1")
    steps, interval, start, end = 12, 2, 0.3, 0.8
    patched, wrapper = ACCELERATORS[name](model, interval, start=start, end=end)
    run(patched, steps)
    sigmas = compute_sigmas(model.scheduler_config, "normal", steps)[:-1]
    high, low = percent_to_sigma(start, model.scheduler_config), percent_to_sigma(end, model.scheduler_config)
    inside = [bool(low <= float(s) <= high) for s in sigmas]
    assert 0 < sum(inside) < steps
    expected_cached = sum(inside) - math.ceil(sum(inside) / interval)  # one contiguous stretch
    report = wrapper.report()
    assert report["full_calls"] == steps - expected_cached and report["unet_calls"] == steps


def test_an_empty_window_is_reported_before_anything_runs():
    assert "start_percent" in DeepCache.validate(start_percent=0.7, end_percent=0.2)
    assert FasterDiffusion.validate(start_percent=0.1, end_percent=1.0) is True


def test_each_batch_has_its_own_cache(make_model):
    """cfg 1 (cond only, batch 1), the CFG batch (2) and another prompt of the same shape, in
    turn: three slots, each with its own interval count and features, so each batch gets what it
    would get alone."""
    model = make_model("sd1")
    g = torch.Generator().manual_seed(3)
    x1, x2 = torch.randn((1, 4, 8, 8), generator=g), torch.randn((2, 4, 8, 8), generator=g)
    c1, c2 = torch.randn((1, 77, 32), generator=g), torch.randn((2, 77, 32), generator=g)
    other = torch.randn((1, 77, 32), generator=g)
    batches = ((x1, c1), (x2, c2), (x1, other))
    timesteps = (900.0, 800.0, 700.0, 600.0, 500.0, 400.0)
    patched, wrapper = deepcache(model, 3)
    mixed = {i: [] for i in range(len(batches))}
    for t in timesteps:
        for i, (x, c) in enumerate(batches):
            mixed[i].append(patched.predict_noise(x, t, c))
    report = wrapper.report()
    assert report["unet_calls"] == 18 and report["full_calls"] == 3 * 2  # calls 0 and 3 of each slot
    for i, (x, c) in enumerate(batches):
        alone, _ = deepcache(model, 3)
        for t, got in zip(timesteps, mixed[i], strict=True):
            assert torch.equal(alone.predict_noise(x, t, c), got)


def test_clones_sharing_the_wrapper_have_their_own_caches(make_model):
    """PAG's perturbed prediction runs the same batch under a clone of the MODEL (same wrapper
    object): its features must not serve the unperturbed calls."""
    patched, wrapper = deepcache(make_model("sd1"), 3)
    clone = patched.clone()
    assert clone.wrappers[-1] is wrapper
    x, c = torch.randn((1, 4, 8, 8)), torch.randn((1, 77, 32))
    for t in (900.0, 800.0, 700.0):
        patched.predict_noise(x, t, c)
        clone.predict_noise(x, t, c)
    assert wrapper.report()["full_calls"] == 2


def test_a_new_run_restarts_the_cache_even_without_begin_run(make_model):
    model = make_model("sd1")
    patched, wrapper = faster(model, 3)
    g = torch.Generator().manual_seed(4)
    x, c = torch.randn((2, 4, 8, 8), generator=g), torch.randn((2, 77, 32), generator=g)
    first = [patched.predict_noise(x, t, c) for t in (900.0, 700.0, 500.0, 300.0)]
    second = [patched.predict_noise(x, t, c) for t in (900.0, 700.0, 500.0, 300.0)]
    assert wrapper.report()["full_calls"] == 4  # calls 0 and 3 of each pass
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


class _DoubleSkips:
    """A hook-style MODEL patch like FreeU's: a forward pre-hook on every decoder resnet (doubling
    the skip half of its input) installed for the duration of each call."""

    def __call__(self, apply, call):
        unet = call.model.prepare()
        handles = []
        for block in unet.up_blocks:
            for resnet in block.resnets:

                def hook(module, args, half=resnet.conv1.in_channels // 2):
                    x = args[0].clone()
                    x[:, half:] *= 2
                    return (x, *args[1:])

                handles.append(resnet.register_forward_pre_hook(hook))
        try:
            return apply(call)
        finally:
            for handle in handles:
                handle.remove()


@pytest.mark.parametrize("name", ACCELERATORS)
def test_patches_applied_after_the_accelerator_still_act(make_model, name):
    model = make_model("sd1")
    hooked = model.with_wrapper(_DoubleSkips())
    reference = run(hooked, 6)
    assert relative_error(reference, run(model, 6)) > 1e-3
    inner = ACCELERATORS[name](model, 1)[0].with_wrapper(_DoubleSkips())  # accelerator first, patch after
    assert torch.equal(run(inner, 6), reference)
    outer, _ = ACCELERATORS[name](hooked, 3)  # patch first: its hooks surround the accelerated pass
    inner, wrapper = ACCELERATORS[name](model, 3)
    inner = inner.with_wrapper(_DoubleSkips())
    assert torch.equal(run(inner, 6), run(outer, 6))
    assert wrapper.report()["full_calls"] == 2


def test_begin_run_and_report_protocol(make_model):
    patched, wrapper = deepcache(make_model("sd1"), 2)
    run(patched, 4)
    assert wrapper.report()["unet_calls"] == 4
    assert wrapper.report()["unet_calls"] == 4  # report() is repeatable...
    assert all(slot.features is None for slot in wrapper._slots)  # ...and frees the cached tensors
    wrapper.begin_run(torch.tensor([1.0, 0.0]))
    assert wrapper.report()["unet_calls"] == 0


def test_unsupported_calls_run_the_full_unet_and_say_why(make_model):
    model = make_model("sd1")
    patched, wrapper = deepcache(model, 3)
    x, c = torch.randn((1, 4, 8, 8)), torch.randn((1, 77, 32))
    expected = model.predict_noise(x, 500.0, c, down_intrablock_additional_residuals=None)
    got = patched.predict_noise(x, 500.0, c, down_intrablock_additional_residuals=None)
    assert torch.equal(got, expected)
    report = wrapper.report()
    assert report["unsupported_calls"] == 1 and "down_intrablock_additional_residuals" in report["unsupported"]


# -- ControlNet, SDXL, samplers ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ACCELERATORS)
def test_with_a_controlnet(make_model, controlnet, name):
    model = make_model("sd1")
    hint = torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(9))
    control = Control(controlnet, hint, strength=1.0)
    uncontrolled = run(model, 6)
    reference = run(model, 6, control=control)
    assert relative_error(uncontrolled, reference) > 1e-3
    same, _ = ACCELERATORS[name](model, 1)
    torch.testing.assert_close(run(same, 6, control=control), reference, rtol=0, atol=1e-6)
    patched, wrapper = ACCELERATORS[name](model, 3)
    got = run(patched, 6, control=control)
    assert wrapper.report()["full_calls"] == 2
    assert relative_error(got, reference) < relative_error(uncontrolled, reference)


@pytest.mark.parametrize("name", ACCELERATORS)
def test_sdxl_counts_and_equivalence(make_model, name):
    model = make_model("sdxl")
    same, _ = ACCELERATORS[name](model, 1)
    torch.testing.assert_close(run(same, 5), run(model, 5), rtol=0, atol=1e-6)
    patched, wrapper = ACCELERATORS[name](model, 2)
    run(patched, 5, batch=2)
    assert wrapper.report()["full_calls"] == 3


def test_two_stage_sampler_counts_model_calls(make_model):
    patched, wrapper = deepcache(make_model("sd1"), 3)
    run(patched, 4, sampler="heun")
    report = wrapper.report()
    calls = report["unet_calls"]
    assert calls > 4 and report["full_calls"] == math.ceil(calls / 3)


def test_wrappers_are_cheap_in_the_output_cache_and_explain_themselves(make_model):
    patched, wrapper = deepcache(make_model("sd1"), 3, depth=2)
    assert isinstance(wrapper, DeepCacheWrapper) and "depth=2" in repr(wrapper)
    assert wrapper.__weft_cache_size__() < 4096
    assert isinstance(faster(make_model("sd1"), 2)[1], FasterDiffusionWrapper)
    for node in (DeepCache, FasterDiffusion):
        assert "arXiv" in node.description


# -- through the engine ------------------------------------------------------------------------------
def test_prompt_with_deepcache_runs_and_reports(make_model):
    from engine import Executor, validate_prompt
    from nodes.api import Node, Output
    from nodes.registry import builtin_registry

    model = make_model("sd1")

    class TinyModel(Node):
        name = "TestAccelerationModel"
        outputs = (Output("MODEL"), Output("CONDITIONING"), Output("CONDITIONING"))

        def run(self):
            return model, conditioning("sd1", 1), conditioning("sd1", 2)

    registry = builtin_registry()
    registry.register(TinyModel, pack="tests")
    prompt = {
        "1": {"class_type": "TestAccelerationModel", "inputs": {}},
        "2": {
            "class_type": "DeepCache",
            "inputs": {
                "model": ["1", 0],
                "cache_interval": 3,
                "cache_depth": 2,
                "start_percent": 0.0,
                "end_percent": 1.0,
            },
        },
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["2", 0],
                "seed": 1,
                "steps": 9,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["1", 1],
                "negative": ["1", 2],
                "latent_image": ["3", 0],
                "denoise": 1.0,
            },
        },
    }
    bad = dict(
        prompt, **{"2": {**prompt["2"], "inputs": {**prompt["2"]["inputs"], "start_percent": 0.9, "end_percent": 0.1}}}
    )
    assert not validate_prompt(bad, registry, ["4"]).ok
    checked = validate_prompt(prompt, registry, ["4"])
    assert checked.ok, checked.node_errors
    result = Executor(registry).execute_sync("p", checked.prompt, ["4"], order=checked.order)
    assert result.status_str == "success"
    reports = result.outputs["4"]["weft_report"]
    assert {"name": "DeepCache", "unet_calls": 9, "full_calls": 3, "shallow_calls": 6} in reports
