"""AdaptiveGuidance on a real tiny UNet: bit-for-bit CFGGuider when it never switches, the
evaluations it makes and saves when it does (per latent of a batch on the fast path, the whole
batch elsewhere), and its report through the sampler node and the log."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch

from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.noise import RandomNoiseSource
from nodes.diffusion.samplers import SAMPLERS, compute_sigmas
from nodes.diffusion.sampling import sample
from nodes.guidance import adaptive
from nodes.guidance.adaptive import AdaptiveGuidance, AdaptiveGuider
from nodes.guidance.apg import APG
from tests.support.tiny_unet import empty

STEPS = 4


def _sigmas(model: Any, steps: int = STEPS) -> torch.Tensor:
    return compute_sigmas(model.scheduler_config, "karras", steps)


def _custom(guider: Any, model: Any, *, batch: int = 1, sampler: str = "euler", steps: int = STEPS) -> Any:
    """SamplerCustomAdvanced's outputs (and UI) for ``guider``."""
    return sn.SamplerCustomAdvanced().run(
        RandomNoiseSource(7), guider, SAMPLERS[sampler], _sigmas(model, steps), empty(batch)
    )


def _outputs(result: Any) -> tuple[torch.Tensor, torch.Tensor]:
    outputs = result.outputs if hasattr(result, "outputs") else result
    return outputs[0]["samples"], outputs[1]["samples"]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("batch", [1, 2])
def test_adaptive_guidance_above_1_equals_cfg_exactly(model, positive, negative, prediction_type, batch) -> None:
    base = model.clone(prediction_type=prediction_type)
    cfg_guider = sn.CFGGuider().run(base, positive, negative, 6.0)[0]
    ag_guider = AdaptiveGuidance().run(base, positive, negative, 1.001, 6.0)[0]
    expected = _outputs(_custom(cfg_guider, base, batch=batch))
    result = _custom(ag_guider, base, batch=batch)
    got = _outputs(result)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    never = None if batch == 1 else [None] * batch
    assert result.ui["weft_report"] == [
        {"name": "AdaptiveGuidance", "unet_evaluations": 2 * STEPS * batch, "saved": 0, "switched_at_step": never}
    ]


def test_adaptive_guidance_switches_after_the_similarity_passes_and_reports_the_savings(
    model, positive, negative, caplog: pytest.LogCaptureFixture
) -> None:
    guider = AdaptiveGuidance().run(model, positive, negative, -1.0, 6.0)[0]  # any similarity passes
    with caplog.at_level(logging.INFO, logger="weft.sampling"):
        result = _custom(guider, model)
    report = {
        "name": "AdaptiveGuidance",
        "unet_evaluations": 2 + (STEPS - 1),
        "saved": STEPS - 1,
        "switched_at_step": 2,
    }
    assert result.ui == {
        "text": ["AdaptiveGuidance: unet_evaluations=5, saved=3, switched_at_step=2"],
        "weft_report": [report],
    }
    assert "AdaptiveGuidance: unet_evaluations=5, saved=3, switched_at_step=2" in caplog.text
    switched, plain_cfg = (
        _outputs(result)[0],
        _outputs(_custom(sn.CFGGuider().run(model, positive, negative, 6.0)[0], model))[0],
    )
    assert not torch.allclose(switched, plain_cfg, rtol=1e-3, atol=1e-3)


def test_adaptive_guidance_at_the_default_spends_at_least_20_percent_fewer_unet_evaluations(
    model, positive, negative
) -> None:
    guider = AdaptiveGuidance().run(model, positive, negative, adaptive.DEFAULT_THRESHOLD, 7.0)[0]
    report = _custom(guider, model, steps=20).ui["weft_report"][0]
    full = 2 * 20
    print(f"\nAdaptiveGuidance at {adaptive.DEFAULT_THRESHOLD}: {report}")
    assert report["unet_evaluations"] + report["saved"] == full
    assert report["unet_evaluations"] <= 0.8 * full


def test_the_switch_is_per_run(model, positive, negative) -> None:
    guider = AdaptiveGuider(model, 6.0, -1.0)
    guider.set_conds(positive, negative)
    first, second = (
        sample(
            guider, SAMPLERS["euler"], _sigmas(model), RandomNoiseSource(7).generate_noise(empty()), empty()["samples"]
        )
        for _ in range(2)
    )
    assert torch.equal(first.samples, second.samples)
    assert first.reports == second.reports == [guider.report()]


def _one_latent_switches(monkeypatch: pytest.MonkeyPatch, which: int) -> None:
    """Make the similarity pass for latent ``which`` of a batch of two only."""

    def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        value = torch.zeros(a.shape[0])
        value[which] = 2.0
        return value

    monkeypatch.setattr(adaptive, "cosine_similarity", similarity)


@pytest.mark.parametrize("which", [0, 1])
def test_on_the_fast_path_each_latent_of_a_batch_switches_on_its_own(
    model, positive, negative, monkeypatch, which: int
) -> None:
    sigmas = _sigmas(model)
    noise = RandomNoiseSource(7).generate_noise(empty(2))
    latent = empty(2)["samples"]
    guider = AdaptiveGuider(model, 6.0, 0.5)
    guider.set_conds(positive, negative)
    with monkeypatch.context() as patch:
        _one_latent_switches(patch, which)
        both = sample(guider, SAMPLERS["euler"], sigmas, noise, latent)
    switched_at = [None, None]
    switched_at[which] = 2
    assert both.reports == [
        {"name": "AdaptiveGuidance", "unet_evaluations": 2 * 2 + 3 * 3, "saved": 3, "switched_at_step": switched_at}
    ]
    for i, threshold in ((which, -1.0), (1 - which, 2.0)):  # alone: the one that switches, the one that doesn't
        alone = AdaptiveGuider(model, 6.0, threshold)
        alone.set_conds(positive, negative)
        single = sample(alone, SAMPLERS["euler"], sigmas, noise[i : i + 1], latent[i : i + 1])
        # equal up to what batching alone changes (the random-weight latents reach a few hundred)
        scale = float(both.samples.abs().max())
        torch.testing.assert_close(both.samples[i : i + 1], single.samples, rtol=0, atol=1e-5 * scale)


def _area_positive(positive: list) -> list:
    """Two positive entries, one of them on the left half: the guider's regions path."""
    cond = positive[0][0]
    return [
        [cond, {"pooled_output": None}],
        [cond.flip(1), {"pooled_output": None, "area": (8, 4, 0, 0), "strength": 0.8}],
    ]


def test_with_areas_it_falls_back_to_the_base_guiders_halves(model, positive, negative) -> None:
    areas = _area_positive(positive)
    cfg_guider = sn.CFGGuider().run(model, areas, negative, 6.0)[0]
    never = AdaptiveGuidance().run(model, areas, negative, 2.0, 6.0)[0]
    torch.testing.assert_close(
        _outputs(_custom(never, model))[0], _outputs(_custom(cfg_guider, model))[0], rtol=0, atol=0
    )
    always = AdaptiveGuidance().run(model, areas, negative, -1.0, 6.0)[0]
    result = _custom(always, model, batch=2)
    assert result.ui["weft_report"][0] == {
        "name": "AdaptiveGuidance",
        "unet_evaluations": 2 * 2 + 2 * 3,
        "saved": 6,
        "switched_at_step": [2, 2],
    }


def test_with_guidance_hooks_it_runs_them_and_switches_the_batch_as_a_whole(model, positive, negative) -> None:
    patched = APG().run(model, 1.0, 0.0, 0.0)[0]
    cfg_guider = sn.CFGGuider().run(patched, positive, negative, 6.0)[0]
    never = AdaptiveGuidance().run(patched, positive, negative, 2.0, 6.0)[0]
    assert torch.equal(_outputs(_custom(never, model))[0], _outputs(_custom(cfg_guider, model))[0])
    eta0 = APG().run(model, 0.0, 0.0, 0.0)[0]
    at_once = AdaptiveGuidance().run(eta0, positive, negative, -1.0, 6.0)[0]
    result = _custom(at_once, model, batch=2)
    assert result.ui["weft_report"][0]["switched_at_step"] == [2, 2]


def test_two_stage_samplers_and_samplers_with_their_own_loop_count_their_calls(model, positive, negative) -> None:
    from tests.diffusion.test_cfg_hooks import _OwnEuler

    guider = AdaptiveGuidance().run(model, positive, negative, -1.0, 6.0)[0]
    heun = _custom(guider, model, sampler="heun")
    calls = 2 * STEPS - 1  # Heun's last step (to sigma 0) is an Euler step
    assert heun.ui["weft_report"][0]["unet_evaluations"] == 2 + (calls - 1)
    assert heun.ui["weft_report"][0]["saved"] == calls - 1
    own = sample(guider, _OwnEuler(), _sigmas(model), RandomNoiseSource(7).generate_noise(empty()), empty()["samples"])
    assert own.reports[0] == {"name": "AdaptiveGuidance", "unet_evaluations": 5, "saved": 3, "switched_at_step": 2}


def test_at_cfg_1_there_is_nothing_to_save(model, positive, negative) -> None:
    result = _custom(AdaptiveGuidance().run(model, positive, negative, -1.0, 1.0)[0], model)
    assert result.ui["weft_report"][0] == {
        "name": "AdaptiveGuidance",
        "unet_evaluations": STEPS,
        "saved": 0,
        "switched_at_step": None,
    }
