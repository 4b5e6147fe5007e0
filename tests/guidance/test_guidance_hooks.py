"""APG, RescaleCFG, CFGGuidanceInterval and PAG on a real tiny UNet (random weights, SD1 layout):
each reduces to CFG where its paper says it should, changes the picture where it should, and
they compose on one MODEL through KSampler and SamplerCustomAdvanced."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nodes.api import Result
from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.cfg_hooks import CFG, POST_CFG, PRE_CFG, UNCOND_NEEDED
from nodes.diffusion.noise import RandomNoiseSource
from nodes.diffusion.samplers import SAMPLERS, compute_sigmas
from nodes.guidance.apg import APG, APGHook, project
from nodes.guidance.interval import CFGGuidanceInterval, GuidanceIntervalHook
from nodes.guidance.pag import (
    IdentitySelfAttention,
    PAGHook,
    PAGUnsupportedError,
    PerturbedAttentionGuidance,
    PerturbMidSelfAttention,
    mid_self_attentions,
)
from nodes.guidance.rescale_cfg import RescaleCFG, RescaleCFGHook, to_v
from tests.support.tiny_unet import empty

TOL = {"rtol": 1e-4, "atol": 1e-4}


def ksampler(
    model: Any,
    positive: Any,
    negative: Any,
    *,
    cfg: float = 5.0,
    steps: int = 4,
    seed: int = 1,
    sampler: str = "euler",
    scheduler: str = "karras",
    batch: int = 1,
) -> tuple[torch.Tensor, list[str]]:
    """KSampler's samples and the report lines it shows in the UI."""
    out = sn.KSampler().run(model, seed, steps, cfg, sampler, scheduler, positive, negative, empty(batch), 1.0)
    if isinstance(out, Result):
        return out.outputs[0]["samples"], list(out.ui["text"])
    return out[0]["samples"], []


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# -- APG --------------------------------------------------------------------------------------
def test_project_splits_a_vector_into_its_parallel_and_orthogonal_parts() -> None:
    v, u = _randn(3, 4, 8, 8, seed=1), _randn(3, 4, 8, 8, seed=2)
    parallel, orthogonal = project(v, u)
    torch.testing.assert_close(parallel + orthogonal, v)
    dims = (1, 2, 3)
    assert float((orthogonal * u).sum(dims).abs().max()) < 1e-3  # orthogonal to u, per sample
    k = (parallel * u).sum(dims, keepdim=True) / (u * u).sum(dims, keepdim=True)
    torch.testing.assert_close(parallel, k * u)  # a multiple of u, per sample
    assert not torch.allclose(k[0], k[1])


def _guided(hook: APGHook, cond: torch.Tensor, uncond: torch.Tensor, scale: float, sigma: float = 1.0) -> torch.Tensor:
    """What the default CFG combination makes of the pre-CFG hook's output."""
    c, u = hook({"conds_out": [cond, uncond], "sigma": torch.tensor([sigma]), "cond_scale": scale})[:2]
    return u + (c - u) * scale


def test_apg_down_weights_the_parallel_component() -> None:
    cond, uncond, scale = _randn(2, 4, 8, 8, seed=3), _randn(2, 4, 8, 8, seed=4), 7.0
    parallel, orthogonal = project(cond - uncond, cond)
    # eta 0: the guidance (guided - cond, per unit of scale above 1) is the orthogonal part alone
    update = (_guided(APGHook(0.0, 0.0, 0.0), cond, uncond, scale) - cond) / (scale - 1)
    torch.testing.assert_close(update, orthogonal, **TOL)
    assert float((update * cond).sum((1, 2, 3)).abs().max()) < 1e-2
    # eta 0.5 keeps half of the parallel part; eta 1 is CFG
    update = (_guided(APGHook(0.5, 0.0, 0.0), cond, uncond, scale) - cond) / (scale - 1)
    torch.testing.assert_close(update, orthogonal + 0.5 * parallel, **TOL)
    torch.testing.assert_close(
        _guided(APGHook(1.0, 0.0, 0.0), cond, uncond, scale), uncond + (cond - uncond) * scale, **TOL
    )


def test_apg_keeps_the_conditional_prediction_for_the_hooks_after_it() -> None:
    cond, uncond = _randn(1, 4, 8, 8, seed=5), _randn(1, 4, 8, 8, seed=6)
    out = APGHook(0.0, 2.0, -0.5)({"conds_out": [cond, uncond], "sigma": torch.tensor([1.0]), "cond_scale": 5.0})
    assert out[0] is cond


def test_apg_norm_threshold_caps_the_update() -> None:
    cond, uncond, scale = _randn(2, 4, 8, 8, seed=7), _randn(2, 4, 8, 8, seed=8), 5.0
    update = (_guided(APGHook(1.0, 1.5, 0.0), cond, uncond, scale) - cond) / (scale - 1)
    norms = torch.linalg.vector_norm(update, dim=(1, 2, 3))
    torch.testing.assert_close(norms, torch.full_like(norms, 1.5), **TOL)  # (cond - uncond) is far longer
    direction = torch.nn.functional.cosine_similarity(update.flatten(1), (cond - uncond).flatten(1))
    torch.testing.assert_close(direction, torch.ones_like(direction), **TOL)


def test_apg_momentum_restarts_when_the_noise_level_goes_up() -> None:
    a, b = _randn(1, 4, 8, 8, seed=9), _randn(1, 4, 8, 8, seed=10)
    hook, fresh = APGHook(1.0, 0.0, -0.5), APGHook(1.0, 0.0, -0.5)
    first = _guided(hook, a, b, 5.0, sigma=10.0)
    second = _guided(hook, b, a, 5.0, sigma=5.0)
    torch.testing.assert_close(second, _guided(APGHook(1.0, 0.0, 0.0), b, a, 5.0) - 4.0 * 0.5 * (a - b), **TOL)
    again = _guided(hook, a, b, 5.0, sigma=10.0)  # above the previous call: a new run
    torch.testing.assert_close(again, first)
    torch.testing.assert_close(again, _guided(fresh, a, b, 5.0, sigma=10.0))


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_apg_with_eta_1_no_threshold_no_momentum_equals_cfg(model, positive, negative, prediction_type) -> None:
    base = model.clone(prediction_type=prediction_type)
    patched = APG().run(base, 1.0, 0.0, 0.0)[0]
    plain, _ = ksampler(base, positive, negative, cfg=7.0)
    through, _ = ksampler(patched, positive, negative, cfg=7.0)
    torch.testing.assert_close(through, plain, **TOL)


def test_apg_with_eta_0_changes_the_picture(model, positive, negative) -> None:
    plain, _ = ksampler(model, positive, negative, cfg=7.0)
    apg, _ = ksampler(APG().run(model, 0.0, 0.0, 0.0)[0], positive, negative, cfg=7.0)
    assert not torch.allclose(apg, plain, rtol=1e-3, atol=1e-3)


def test_apg_momentum_is_per_run_so_two_identical_runs_agree(model, positive, negative) -> None:
    patched = APG().run(model, 0.0, 5.0, -0.5)[0]
    first, _ = ksampler(patched, positive, negative, cfg=7.0, steps=5)
    second, _ = ksampler(patched, positive, negative, cfg=7.0, steps=5)
    assert torch.equal(first, second)
    without, _ = ksampler(APG().run(model, 0.0, 5.0, 0.0)[0], positive, negative, cfg=7.0, steps=5)
    assert not torch.allclose(first, without, rtol=1e-3, atol=1e-3)  # and the momentum does something


# -- RescaleCFG ------------------------------------------------------------------------------------
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_rescale_cfg_multiplier_0_equals_cfg(model, positive, negative, prediction_type) -> None:
    base = model.clone(prediction_type=prediction_type)
    plain, _ = ksampler(base, positive, negative, cfg=7.0)
    through, _ = ksampler(RescaleCFG().run(base, 0.0)[0], positive, negative, cfg=7.0)
    torch.testing.assert_close(through, plain, **TOL)
    rescaled, _ = ksampler(RescaleCFG().run(base, 0.7)[0], positive, negative, cfg=7.0)
    assert not torch.allclose(rescaled, plain, rtol=1e-3, atol=1e-3)


def test_rescale_cfg_at_1_gives_the_conditional_v_predictions_standard_deviation() -> None:
    x, cond, uncond = _randn(2, 4, 8, 8, seed=11) * 3, _randn(2, 4, 8, 8, seed=12), _randn(2, 4, 8, 8, seed=13)
    sigma = torch.tensor([2.0, 0.5])
    noise = RescaleCFGHook(1.0)(
        {"input": x, "cond_denoised": cond, "uncond_denoised": uncond, "sigma": sigma, "cond_scale": 9.0}
    )
    s = sigma.view(-1, 1, 1, 1)
    v_out, v_cond = to_v(x - noise, x, s), to_v(cond, x, s)
    torch.testing.assert_close(v_out.std(dim=(1, 2, 3)), v_cond.std(dim=(1, 2, 3)), **TOL)


# -- CFGGuidanceInterval -----------------------------------------------------------------------
def test_guidance_interval_covering_all_steps_equals_cfg(model, positive, negative) -> None:
    plain, _ = ksampler(model, positive, negative, cfg=7.0)
    through, text = ksampler(CFGGuidanceInterval().run(model, 0.0, 1.0)[0], positive, negative, cfg=7.0)
    torch.testing.assert_close(through, plain, **TOL)
    assert text == ["CFGGuidanceInterval: guided_calls=4, unguided_calls=0"]


def test_a_narrow_guidance_interval_changes_the_picture(model, positive, negative) -> None:
    plain, _ = ksampler(model, positive, negative, cfg=7.0, steps=6)
    narrow, text = ksampler(CFGGuidanceInterval().run(model, 0.3, 0.7)[0], positive, negative, cfg=7.0, steps=6)
    assert not torch.allclose(narrow, plain, rtol=1e-3, atol=1e-3)
    guided, unguided = (int(part.split("=")[1]) for part in text[0].split(": ")[1].split(", "))
    assert guided + unguided == 6 and 0 < guided < 6


def test_outside_the_interval_the_result_is_the_conditional_prediction(model, positive, negative) -> None:
    cond_only, _ = ksampler(model, positive, negative, cfg=1.0)
    empty_window = CFGGuidanceInterval().run(model, 1.0, 1.0)[0]  # no sigma above 0 lies in [0, 0]
    through, text = ksampler(empty_window, positive, negative, cfg=7.0)
    torch.testing.assert_close(through, cond_only, **TOL)
    assert text == ["CFGGuidanceInterval: guided_calls=0, unguided_calls=4"]
    # ... whatever the other guidance hooks would have done with the unconditional prediction
    with_apg = CFGGuidanceInterval().run(APG().run(model, 0.0, 1.0, -0.5)[0], 1.0, 1.0)[0]
    with_rescale = CFGGuidanceInterval().run(RescaleCFG().run(model, 0.7)[0], 1.0, 1.0)[0]
    for patched in (with_apg, with_rescale):
        torch.testing.assert_close(ksampler(patched, positive, negative, cfg=7.0)[0], cond_only, **TOL)


def test_outside_the_interval_the_unconditional_half_is_not_evaluated(model, positive, negative) -> None:
    batches: list[int] = []

    def count(apply: Any, call: Any) -> Any:
        batches.append(int(call.x.shape[0]))
        return apply(call)

    narrow = CFGGuidanceInterval().run(model.with_wrapper(count), 0.3, 0.7)[0]
    gated, text = ksampler(narrow, positive, negative, cfg=7.0, steps=6)
    guided, unguided = (int(part.split("=")[1]) for part in text[0].split(": ")[1].split(", "))
    assert batches.count(2) == guided and batches.count(1) == unguided and unguided > 0
    # the same picture as evaluating both halves and discarding the unconditional one
    ungated = narrow.clone(model_options={k: v for k, v in narrow.model_options.items() if k != UNCOND_NEEDED})
    both, _ = ksampler(ungated, positive, negative, cfg=7.0, steps=6)
    torch.testing.assert_close(gated, both, **TOL)


def test_the_interval_runs_before_the_other_pre_cfg_hooks_whatever_the_chain_order(model) -> None:
    chained = CFGGuidanceInterval().run(APG().run(model, 0.0, 5.0, 0.0)[0], 0.2, 0.8)[0]
    hooks = chained.model_options[PRE_CFG]
    assert isinstance(hooks[0], GuidanceIntervalHook) and isinstance(hooks[1], APGHook)
    assert CFGGuidanceInterval.validate(start_percent=0.8, end_percent=0.2) is not True
    assert CFGGuidanceInterval.validate(start_percent=0.2, end_percent=0.8) is True


# -- PAG ------------------------------------------------------------------------------------------
def test_pag_scale_0_equals_cfg(model, positive, negative) -> None:
    plain, _ = ksampler(model, positive, negative, cfg=7.0)
    through, text = ksampler(PerturbedAttentionGuidance().run(model, 0.0)[0], positive, negative, cfg=7.0)
    torch.testing.assert_close(through, plain, **TOL)
    assert text == []  # no perturbed pass was made


def test_identity_self_attention_is_the_value_path() -> None:
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    hidden = _randn(2, 5, 16, seed=14)
    with torch.no_grad():
        expected = attn.to_out[0](attn.to_v(hidden))
        attn.set_processor(IdentitySelfAttention(attn.processor))
        torch.testing.assert_close(attn(hidden), expected)
        context = _randn(2, 3, 16, seed=15)  # cross-attention has no identity map: the layer's own runs
        original = attn.processor.original
        assert torch.equal(
            attn(hidden, encoder_hidden_states=context), original(attn, hidden, encoder_hidden_states=context)
        )


def test_pag_perturbed_pass_differs_and_the_processors_are_restored(model, positive) -> None:
    layers = mid_self_attentions(model.prepare())
    before = [layer.processor for layer in layers]
    perturbed = PAGHook(3.0).perturbed_model(model)
    assert isinstance(perturbed.wrappers[0], PerturbMidSelfAttention) and perturbed.unet is model.unet  # shared weights
    x, t, cond = _randn(1, 4, 8, 8, seed=16), torch.tensor([500.0]), positive[0][0]
    normal_out = model.predict_noise(x, t, cond)
    perturbed_out = perturbed.predict_noise(x, t, cond)
    assert not torch.allclose(normal_out, perturbed_out, rtol=1e-3, atol=1e-4)
    assert [layer.processor for layer in layers] == before
    assert torch.equal(model.predict_noise(x, t, cond), normal_out)

    def failing(call: Any) -> Any:
        assert all(isinstance(layer.processor, IdentitySelfAttention) for layer in layers)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        PerturbMidSelfAttention()(failing, type("Call", (), {"model": model})())
    assert [layer.processor for layer in layers] == before


def test_pag_changes_the_picture_and_reports_its_extra_evaluations(model, positive, negative) -> None:
    plain, _ = ksampler(model, positive, negative, cfg=7.0)
    patched = PerturbedAttentionGuidance().run(model, 3.0)[0]
    assert isinstance(patched.model_options[POST_CFG][0], PAGHook)
    pag, text = ksampler(patched, positive, negative, cfg=7.0)
    assert not torch.allclose(pag, plain, rtol=1e-3, atol=1e-3)
    assert text == ["PerturbedAttentionGuidance: perturbed_evaluations=4"]


@pytest.mark.parametrize(("family", "layers"), [("sd1", 1), ("sd2", 1), ("sdxl", 2)])
def test_pag_finds_the_middle_block_self_attention_of_each_family(family: str, layers: int) -> None:
    from diffusers import UNet2DConditionModel

    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel
    from weft_tools.tiny_models import UNET_CONFIGS

    def build() -> Any:
        torch.manual_seed(5)
        return UNet2DConditionModel(**UNET_CONFIGS[family])

    handle = get_manager().handle(("tests.guidance", family), "unet", build, name=f"tiny-{family}-pag")
    prediction = "v_prediction" if family == "sd2" else "epsilon"
    tiny = DiffusionModel(handle, family=family, prediction_type=prediction, name=f"tiny-{family}-pag")
    unet = tiny.prepare()
    assert len(mid_self_attentions(unet)) == layers
    x, t = _randn(1, 4, 8, 8, seed=17), torch.tensor([300.0])
    cond = _randn(1, 77, unet.config.cross_attention_dim, seed=18)
    pooled = _randn(1, 32, seed=19) if family == "sdxl" else None
    normal = tiny.predict_noise(x, t, cond, pooled)
    perturbed = PAGHook(3.0).perturbed_model(tiny).predict_noise(x, t, cond, pooled)
    assert not torch.allclose(normal, perturbed, rtol=1e-3, atol=1e-4)
    assert torch.equal(tiny.predict_noise(x, t, cond, pooled), normal)


def test_pag_says_what_it_needs_on_a_unet_without_middle_attention() -> None:
    with pytest.raises(PAGUnsupportedError, match="middle block"):
        mid_self_attentions(type("UNet", (), {"mid_block": None})())


# -- composition ----------------------------------------------------------------------------------
def _all_three(model: Any) -> Any:
    patched = APG().run(model, 0.0, 5.0, -0.5)[0]
    patched = CFGGuidanceInterval().run(patched, 0.1, 0.9)[0]
    return PerturbedAttentionGuidance().run(patched, 2.0)[0]


def test_apg_interval_and_pag_compose_through_ksampler(model, positive, negative) -> None:
    patched = _all_three(model)
    assert [type(h).__name__ for h in patched.model_options[PRE_CFG]] == ["GuidanceIntervalHook", "APGHook"]
    assert CFG not in patched.model_options
    samples, text = ksampler(patched, positive, negative, cfg=7.0, steps=5)
    assert torch.isfinite(samples).all()
    assert any(line.startswith("CFGGuidanceInterval: ") for line in text)
    assert "PerturbedAttentionGuidance: perturbed_evaluations=5" in text
    plain, _ = ksampler(model, positive, negative, cfg=7.0, steps=5)
    assert not torch.allclose(samples, plain, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("guider_kind", ["CFGGuider", "AdaptiveGuidance"])
def test_apg_interval_and_pag_compose_through_sampler_custom_advanced(
    model, positive, negative, guider_kind: str
) -> None:
    from nodes.guidance.adaptive import AdaptiveGuidance

    patched = _all_three(RescaleCFG().run(model, 0.5)[0])
    if guider_kind == "CFGGuider":
        guider = sn.CFGGuider().run(patched, positive, negative, 7.0)[0]
    else:
        guider = AdaptiveGuidance().run(patched, positive, negative, 0.9, 7.0)[0]
    latent = empty(2)
    sigmas = compute_sigmas(model.scheduler_config, "karras", 5)
    out = sn.SamplerCustomAdvanced().run(RandomNoiseSource(3), guider, SAMPLERS["dpmpp_2m"], sigmas, latent)
    assert torch.isfinite(out.outputs[0]["samples"]).all() and out.outputs[0]["samples"].shape == (2, 4, 8, 8)
    names = [report["name"] for report in out.ui["weft_report"]]
    assert "CFGGuidanceInterval" in names and "PerturbedAttentionGuidance" in names
    assert ("AdaptiveGuidance" in names) == (guider_kind == "AdaptiveGuidance")
