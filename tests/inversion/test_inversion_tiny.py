"""Inversion on a real tiny SD1 UNet (random weights): the round trips each paper promises.

Random weights make a chaotic denoiser (a fresh sample lands far from any given latent), which
is a hard case for approximate inversion and no problem at all for the exact ones.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from engine import Executor, validate_prompt
from nodes.api import Input, Node, Output, Result
from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.noise import NoNoise, RandomNoiseSource
from nodes.inversion.common import Denoiser, Inversion, InversionError, make_guider
from nodes.inversion.ddim import DDIMInversion, ddim_step
from nodes.inversion.ddpm_edit_friendly import DDPMEditFriendlyInversion
from nodes.inversion.direct_inversion import DirectInversionSampler, direct_inversion_edit
from nodes.inversion.edict import EDICTInversion
from nodes.inversion.edit_image import EDIT_METHODS, EditImage, edit_graph
from nodes.inversion.inversion_free import InversionFreeEditSampler, ddcm_edit
from nodes.inversion.sampler_nodes import InversionSampler, InversionSigmas
from nodes.registry import builtin_registry
from tests.support.tiny_unet import conditioning

STEPS = 12


def outputs(result: Any) -> tuple:
    return tuple(result.outputs) if hasattr(result, "outputs") else tuple(result)


@pytest.fixture(scope="module")
def source_latent() -> dict:
    g = torch.Generator().manual_seed(0)
    return {"samples": torch.randn((1, 4, 8, 8), generator=g) * 5}  # raw VAE scale (x0.18215 inside)


def regenerate(
    model: Any,
    inversion: Inversion,
    noisy: dict,
    positive: Any,
    negative: Any,
    cfg: float,
    sampler: Any = None,
    skip: int = 0,
) -> torch.Tensor:
    """SamplerCustomAdvanced with DisableNoise, the inversion's sampler and schedule (as a user wires it)."""
    guider = outputs(sn.CFGGuider().run(model, positive, negative, cfg))[0]
    sampler = sampler or outputs(InversionSampler().run(inversion))[0]
    sigmas = outputs(InversionSigmas().run(inversion, skip))[0]
    return outputs(sn.SamplerCustomAdvanced().run(NoNoise(), guider, sampler, sigmas, noisy))[0]["samples"]


def test_edict_inversion_then_regeneration_reconstructs_the_latent(
    tiny_model, tiny_positive, tiny_negative, source_latent
):
    noisy, inversion = outputs(
        EDICTInversion().run(
            tiny_model,
            tiny_positive,
            source_latent,
            STEPS,
            "normal",
            1.0,
            0.93,
            "float64_cpu",
            cfg=3.0,
            negative=tiny_negative,
        )
    )
    assert inversion.dtype == torch.float64 and inversion.method == "edict"
    assert float((noisy["samples"] - source_latent["samples"]).abs().max()) > 10  # it really went up to noise
    back = regenerate(tiny_model, inversion, noisy, tiny_positive, tiny_negative, 3.0)
    error = float((back - source_latent["samples"]).abs().max())
    print(f"\nEDICT float64 round trip, {STEPS} steps, cfg 3: max abs error {error:.2e}")
    assert error < 1e-3
    # from part-way down (EDICT's partial inversion for editing) it is exact too
    partial = regenerate(tiny_model, inversion, noisy, tiny_positive, tiny_negative, 3.0, skip=4)
    assert float((partial - source_latent["samples"]).abs().max()) < 1e-3
    # another prompt gives another picture (the round trip is not trivially the identity)
    edited = regenerate(tiny_model, inversion, noisy, conditioning(3), tiny_negative, 3.0)
    assert float((edited - source_latent["samples"]).abs().max()) > 0.1


def test_edict_in_float32_stays_close(tiny_model, tiny_positive, tiny_negative, source_latent):
    noisy, inversion = outputs(
        EDICTInversion().run(tiny_model, tiny_positive, source_latent, STEPS, "normal", 1.0, 0.93, "model", cfg=1.0)
    )
    back = regenerate(tiny_model, inversion, noisy, tiny_positive, tiny_negative, 1.0)
    assert float((back - source_latent["samples"]).abs().max()) < 1e-2


def test_edit_friendly_ddpm_inversion_reconstructs_exactly(tiny_model, tiny_positive, tiny_negative, source_latent):
    noisy, inversion = outputs(
        DDPMEditFriendlyInversion().run(
            tiny_model,
            tiny_positive,
            source_latent,
            STEPS,
            "normal",
            1.0,
            7,
            "float64_cpu",
            cfg=3.0,
            negative=tiny_negative,
        )
    )
    assert len(inversion.noise_maps) == STEPS
    back = regenerate(tiny_model, inversion, noisy, tiny_positive, tiny_negative, 3.0)
    error = float((back - source_latent["samples"]).abs().max())
    print(f"\nedit-friendly DDPM round trip: max abs error {error:.2e}")
    assert error < 1e-3
    skipped = regenerate(tiny_model, inversion, noisy, tiny_positive, tiny_negative, 3.0, skip=5)  # T_skip
    assert float((skipped - source_latent["samples"]).abs().max()) < 1e-3
    # the same maps under another prompt: an edit, not the source
    edited = regenerate(tiny_model, inversion, noisy, conditioning(3), tiny_negative, 3.0, skip=5)
    assert float((edited - source_latent["samples"]).abs().max()) > 0.1
    # the maps of the noisy steps are roughly standard normal (not the huge residuals of a bad solve)
    assert 0.2 < float(inversion.noise_maps[0].std()) < 5


def test_ddim_inversion_then_sampling_reconstructs_better_than_a_fresh_sample(
    tiny_model, tiny_positive, tiny_negative, source_latent
):
    """Bound: the round trip's mean abs error is at most a quarter of a fresh sample's (same prompt,
    sampler, schedule and cfg 1; seeds 0..2), and refinement makes it smaller still."""
    target = source_latent["samples"]
    errors = {}
    for refine in (0, 3):
        noisy, inversion = outputs(
            DDIMInversion().run(tiny_model, tiny_positive, source_latent, STEPS, "normal", 1.0, refine, "model")
        )
        # the ordinary way back: KSamplerAdvanced, ddim, no added noise
        back = outputs(
            sn.KSamplerAdvanced().run(
                tiny_model,
                "disable",
                0,
                STEPS,
                1.0,
                "ddim",
                "normal",
                tiny_positive,
                tiny_negative,
                noisy,
                0,
                10000,
                "disable",
            )
        )[0]
        matching = regenerate(tiny_model, inversion, noisy, tiny_positive, tiny_negative, 1.0)
        torch.testing.assert_close(matching, back["samples"], rtol=1e-4, atol=1e-3)
        errors[refine] = float((back["samples"] - target).abs().mean())
    fresh = [
        float(
            (
                outputs(
                    sn.KSampler().run(
                        tiny_model,
                        seed,
                        STEPS,
                        1.0,
                        "ddim",
                        "normal",
                        tiny_positive,
                        tiny_negative,
                        {"samples": torch.zeros_like(target)},
                        1.0,
                    )
                )[0]["samples"]
                - target
            )
            .abs()
            .mean()
        )
        for seed in range(3)
    ]
    print(
        f"\nDDIM round trip mean abs error: refine 0 {errors[0]:.3f}, refine 3 {errors[3]:.3f}; "
        f"fresh samples {', '.join(f'{e:.3f}' for e in fresh)}"
    )
    assert errors[0] <= 0.25 * min(fresh)
    assert errors[3] < errors[0]


def test_direct_inversion_source_branch_reproduces_the_source_latent(
    tiny_model, tiny_positive, tiny_negative, source_latent
):
    # inverted without guidance, edited with cfg 5: exactly the gap Direct Inversion closes
    noisy, inversion = outputs(
        DDIMInversion().run(tiny_model, tiny_positive, source_latent, STEPS, "normal", 1.0, 0, "model")
    )
    x0 = tiny_model.process_in(source_latent["samples"])
    shape = tuple(x0.shape)
    source = Denoiser(make_guider(tiny_model, tiny_positive, tiny_negative, 5.0), shape)
    target = Denoiser(make_guider(tiny_model, conditioning(3), tiny_negative, 5.0), shape)
    with torch.inference_mode():
        result = direct_inversion_edit(source, target, inversion.states, inversion.sigmas)
        drifted = inversion.states[0]
        for j in range(STEPS):  # the same source branch without the correction
            drifted, _ = ddim_step(source, drifted, float(inversion.sigmas[j]), float(inversion.sigmas[j + 1]))
    assert torch.equal(result.source, x0)
    assert float((drifted - x0).abs().max()) > 0.1 and result.largest_correction > 0.1
    assert float((result.target - x0).abs().max()) > 1e-3  # the target branch edits
    # through the node and the loop: the same prompt in the target branch gives the source back
    sampler = outputs(DirectInversionSampler().run(inversion, 5.0, True))[0]
    same = regenerate(tiny_model, inversion, noisy, tiny_positive, tiny_negative, 5.0, sampler=sampler)
    torch.testing.assert_close(same, source_latent["samples"], rtol=0, atol=1e-2)
    assert sampler.report()["largest_correction"] > 0.1


def test_inversion_free_edit_with_the_source_prompt_returns_the_source(
    tiny_model, tiny_positive, tiny_negative, source_latent
):
    latent = source_latent
    sampler = outputs(InversionFreeEditSampler().run(latent, tiny_positive, 1.0))[0]
    guider = outputs(sn.CFGGuider().run(tiny_model, tiny_positive, tiny_negative, 1.0))[0]
    sigmas = outputs(sn.BasicScheduler().run(tiny_model, "normal", 6, 1.0))[0]
    same = outputs(sn.SamplerCustomAdvanced().run(RandomNoiseSource(1), guider, sampler, sigmas, latent))[0]
    torch.testing.assert_close(same["samples"], latent["samples"], rtol=0, atol=1e-3)
    other = outputs(sn.CFGGuider().run(tiny_model, conditioning(3), tiny_negative, 1.0))[0]
    edited = outputs(sn.SamplerCustomAdvanced().run(RandomNoiseSource(1), other, sampler, sigmas, latent))[0]
    assert float((edited["samples"] - latent["samples"]).abs().max()) > 1e-2
    # the core loop: same conditioning in both branches is the identity from any start
    x0 = tiny_model.process_in(latent["samples"])
    d = Denoiser(make_guider(tiny_model, tiny_positive, None, 1.0), tuple(x0.shape))
    g = torch.Generator().manual_seed(5)
    with torch.inference_mode():
        out, _ = ddcm_edit(
            d, d, x0, torch.randn(x0.shape, generator=g) * 14, sigmas, lambda x: torch.randn(x.shape, generator=g)
        )
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-5)


# -- errors that name the node, the input and what to do -------------------------------------------


def test_a_sampler_refuses_sigmas_that_are_not_the_inversions(tiny_model, tiny_positive, tiny_negative, source_latent):
    noisy, inversion = outputs(
        DDIMInversion().run(tiny_model, tiny_positive, source_latent, 6, "normal", 1.0, 0, "model")
    )
    guider = outputs(sn.CFGGuider().run(tiny_model, tiny_positive, tiny_negative, 1.0))[0]
    sampler = outputs(InversionSampler().run(inversion))[0]
    karras = outputs(sn.BasicScheduler().run(tiny_model, "karras", 6, 1.0))[0]
    with pytest.raises(InversionError, match="InversionSampler: the run's SIGMAS .* InversionSigmas"):
        sn.SamplerCustomAdvanced().run(NoNoise(), guider, sampler, karras, noisy)
    wrong = {"samples": torch.zeros((2, 4, 8, 8))}
    with pytest.raises(InversionError, match="latent_image has shape"):
        sn.SamplerCustomAdvanced().run(NoNoise(), guider, sampler, inversion.sigmas, wrong)


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("latent", "EDICTInversion: input 'latent' is not a LATENT"),
        ("channels", "EDICTInversion: input 'latent' has 3 latent channels but the model expects 4"),
        ("positive", "EDICTInversion: input 'positive' is not a CONDITIONING"),
        ("mix", "EDICTInversion: input 'mix' must be in"),
        ("scheduler", "EDICTInversion: input 'scheduler' .*not available"),
    ],
)
def test_inversion_nodes_name_the_input_that_is_wrong(tiny_model, tiny_positive, source_latent, case, pattern):
    args: dict[str, Any] = dict(
        model=tiny_model,
        positive=tiny_positive,
        latent=source_latent,
        steps=4,
        scheduler="normal",
        denoise=1.0,
        mix=0.93,
        precision="model",
    )
    if case == "latent":
        args["latent"] = torch.zeros(1, 4, 8, 8)
    elif case == "channels":
        args["latent"] = {"samples": torch.zeros(1, 3, 8, 8)}
    elif case == "positive":
        args["positive"] = "a red circle"
    elif case == "mix":
        args["mix"] = 1.0
    else:
        args["scheduler"] = "align_your_steps"
    with pytest.raises(InversionError, match=pattern):
        EDICTInversion().run(**args)


def test_samplers_check_what_they_are_given(tiny_model, tiny_positive, source_latent):
    with pytest.raises(InversionError, match="InversionSampler: input 'inversion' is not an INVERSION"):
        InversionSampler().run(source_latent)
    _, edict = outputs(EDICTInversion().run(tiny_model, tiny_positive, source_latent, 3, "normal", 1.0, 0.93, "model"))
    with pytest.raises(InversionError, match="DirectInversionSampler: input 'inversion' holds a edict inversion"):
        DirectInversionSampler().run(edict, -1.0, True)
    with pytest.raises(InversionError, match="InversionSigmas: input 'skip_steps' must be between 0 and 2"):
        InversionSigmas().run(edict, 3)


def test_inversion_free_editing_refuses_an_inpainting_model(
    tiny_model, tiny_positive, tiny_negative, source_latent, monkeypatch
):
    sampler = outputs(InversionFreeEditSampler().run(source_latent, tiny_positive, 1.0))[0]
    guider = outputs(sn.CFGGuider().run(tiny_model, tiny_positive, tiny_negative, 1.0))[0]
    sigmas = outputs(sn.BasicScheduler().run(tiny_model, "normal", 3, 1.0))[0]
    inpainting_unet = SimpleNamespace(config=SimpleNamespace(in_channels=9))
    monkeypatch.setattr(tiny_model, "prepare", lambda: inpainting_unet)  # what a 9-channel checkpoint loads
    with pytest.raises(
        InversionError,
        match="InversionFreeEditSampler: .*input 'model'.*inpainting model "
        r"\(9 input channels\)",
    ):
        sn.SamplerCustomAdvanced().run(RandomNoiseSource(0), guider, sampler, sigmas, source_latent)


# -- through the engine ----------------------------------------------------------------------------


class _Values:
    """What the test nodes below hand to the graph, and what the capture node saw."""

    given: dict[str, Any] = {}
    seen: dict[str, Any] = {}


class _Given(Node):
    """Values for the graph: the tiny MODEL, a conditioning, a LATENT (and stand-ins typed for EditImage)."""

    name = "TestInversionGiven"
    category = "testing"
    inputs = ()
    outputs = (
        Output("MODEL"),
        Output("CONDITIONING"),
        Output("LATENT"),
        Output("IMAGE"),
        Output("VAE"),
        Output("CLIP"),
    )

    def run(self) -> tuple:
        g = _Values.given
        return g["model"], g["positive"], g["latent"], None, None, None


class _Capture(Node):
    name = "TestInversionCapture"
    category = "testing"
    output_node = True
    inputs = (Input("samples", "LATENT"),)
    outputs = ()

    def run(self, samples: dict) -> Result:
        _Values.seen["samples"] = samples
        return Result(ui={"ok": [True]})


@pytest.fixture
def registry(tiny_model, tiny_positive, source_latent):
    _Values.given = {"model": tiny_model, "positive": tiny_positive, "latent": source_latent}
    _Values.seen = {}
    reg = builtin_registry()
    reg.register(_Given, pack="tests")
    reg.register(_Capture, pack="tests")
    return reg


def test_inversion_nodes_are_registered_and_run_in_a_prompt(registry, source_latent):
    for name in (
        "DDIMInversion",
        "EDICTInversion",
        "DDPMEditFriendlyInversion",
        "InversionSampler",
        "InversionSigmas",
        "DirectInversionSampler",
        "InversionFreeEditSampler",
        "EditImage",
    ):
        schema = registry[name].schema
        assert schema.description and schema.category
    assert [o.type for o in registry["EDICTInversion"].schema.outputs] == ["LATENT", "INVERSION"]
    prompt = {
        "g": {"class_type": "TestInversionGiven", "inputs": {}},
        "inv": {
            "class_type": "EDICTInversion",
            "inputs": {
                "model": ["g", 0],
                "positive": ["g", 1],
                "latent": ["g", 2],
                "steps": 3,
                "scheduler": "normal",
                "denoise": 1.0,
                "mix": 0.93,
                "precision": "float64_cpu",
                "cfg": 1.0,
            },
        },
        "smp": {"class_type": "InversionSampler", "inputs": {"inversion": ["inv", 1]}},
        "sig": {"class_type": "InversionSigmas", "inputs": {"inversion": ["inv", 1], "skip_steps": 0}},
        "gd": {"class_type": "BasicGuider", "inputs": {"model": ["g", 0], "conditioning": ["g", 1]}},
        "nz": {"class_type": "DisableNoise", "inputs": {}},
        "out": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["nz", 0],
                "guider": ["gd", 0],
                "sampler": ["smp", 0],
                "sigmas": ["sig", 0],
                "latent_image": ["inv", 0],
            },
        },
        "cap": {"class_type": "TestInversionCapture", "inputs": {"samples": ["out", 0]}},
    }
    checked = validate_prompt(prompt, registry, ["cap"])
    assert checked.ok, checked.node_errors
    events: list[tuple[str, Any]] = []
    run = Executor(registry).execute_sync(
        "p", checked.prompt, ["cap"], order=checked.order, emit=lambda e, d: events.append((e, d))
    )
    assert run.status_str == "success", run.error
    torch.testing.assert_close(_Values.seen["samples"]["samples"], source_latent["samples"], rtol=0, atol=1e-4)
    progress = [(d["node"], d["value"], d["max"]) for e, d in events if e == "progress"]
    assert ("inv", 3, 3) in progress and ("out", 3, 3) in progress
    assert "EDICT inversion: 3 steps" in run.outputs["inv"]["text"][0]


def test_a_wrong_input_fails_the_run_with_the_nodes_message(registry):
    prompt = {
        "g": {"class_type": "TestInversionGiven", "inputs": {}},
        "inv": {
            "class_type": "DDIMInversion",
            "inputs": {
                "model": ["g", 0],
                "positive": ["g", 1],
                "latent": ["g", 2],
                "steps": 3,
                "scheduler": "normal",
                "denoise": 1.0,
                "refine": 0,
                "precision": "model",
                "cfg": 1.0,
            },
        },
        "sig": {"class_type": "InversionSigmas", "inputs": {"inversion": ["inv", 1], "skip_steps": 3}},
        "ks": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "gd": {"class_type": "BasicGuider", "inputs": {"model": ["g", 0], "conditioning": ["g", 1]}},
        "nz": {"class_type": "DisableNoise", "inputs": {}},
        "out": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["nz", 0],
                "guider": ["gd", 0],
                "sampler": ["ks", 0],
                "sigmas": ["sig", 0],
                "latent_image": ["inv", 0],
            },
        },
        "cap": {"class_type": "TestInversionCapture", "inputs": {"samples": ["out", 0]}},
    }
    checked = validate_prompt(prompt, registry, ["cap"])
    assert checked.ok, checked.node_errors
    run = Executor(registry).execute_sync("p", checked.prompt, ["cap"], order=checked.order)
    assert run.status_str == "error"
    assert "InversionSigmas: input 'skip_steps' must be between 0 and 2" in str(run.error)


@pytest.mark.parametrize("method", EDIT_METHODS)
def test_edit_image_expands_into_a_valid_graph_of_the_parts(registry, method):
    outer = {"g": {"class_type": "TestInversionGiven", "inputs": {}}}
    refs = {"model": ["g", 0], "image": ["g", 3], "vae": ["g", 4], "clip": ["g", 5]}
    graph, output = edit_graph(method, refs, "a red circle", "a blue circle", 10, 5.0, 1, 1.0)
    assert output == ["~decode", 0]
    checked = validate_prompt({**outer, **graph}, registry, ["~decode"])
    assert checked.ok, checked.node_errors
    classes = {node["class_type"] for node in graph.values()}
    expected = {
        "ddim": "DDIMInversion",
        "edict": "EDICTInversion",
        "ddpm_edit_friendly": "DDPMEditFriendlyInversion",
        "direct_inversion": "DirectInversionSampler",
        "inversion_free": "InversionFreeEditSampler",
    }[method]
    assert expected in classes and {"VAEEncode", "VAEDecode", "SamplerCustomAdvanced"} <= classes


def test_edit_image_links_its_parts_to_its_own_upstream_nodes():
    dynprompt = {
        "7": {
            "class_type": "EditImage",
            "inputs": {"image": ["3", 0], "vae": ["1", 2], "model": ["1", 0], "clip": ["1", 1]},
        }
    }
    out = EditImage().run(
        None,
        None,
        None,
        None,
        "a red circle",
        "a blue circle",
        "edict",
        10,
        5.0,
        0,
        1.0,
        unique_id="7",
        dynprompt=dynprompt,
    )
    assert out.outputs == (["~decode", 0],)
    assert out.expand["~encode"]["inputs"] == {"pixels": ["3", 0], "vae": ["1", 2]}
    assert out.expand["~invert"]["inputs"]["model"] == ["1", 0]
    with pytest.raises(InversionError, match="EditImage: input 'target_prompt' is empty"):
        EditImage().run(None, None, None, None, "a red circle", " ", "edict", 10, 5.0, 0, 1.0)
    assert "method 'p2p'" in EditImage.validate(method="p2p")
