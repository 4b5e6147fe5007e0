"""SelfAttentionGuidance (nodes/guidance/sag.py) on the tiny SD1-layout UNet: the blur map against
ComfyUI 0.8.0's, the recorded attention against the attention itself, the guidance term against
its formula, scale 0 against the plain run, and the paths where the map must be evaluated again."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from nodes.diffusion import sampler_nodes as sn
from nodes.guidance.pag import mid_self_attentions
from nodes.guidance.sag import (
    Record,
    RecordingSelfAttention,
    RecordMidSelfAttention,
    SAGError,
    SAGHook,
    SelfAttentionGuidance,
    _grid_rows,
    attention_received,
    blur_attended,
    gaussian_blur,
)
from tests.support.tiny_unet import conditioning, empty

TOL = {"rtol": 1e-4, "atol": 2e-4}
STEPS = 3

#: ComfyUI 0.8.0's ``create_blur_map`` (comfy_extras/nodes_sag.py, lifted by a throwaway script)
#: on the inputs of ``_comfy_case`` with blur_sigma 1.3: the received attention, the sum of its
#: output, a cosine-weighted sum, and row [1, 2, 3]
COMFY_RECEIVED = [
    [1.788454, 0.909474, 0.2958081, 0.2756636, 0.8652736, 1.865327],
    [2.181746, 0.6585057, 0.2550156, 0.5094264, 1.131392, 1.263914],
]
COMFY_BLUR_SUM, COMFY_BLUR_WEIGHTED = 3.0816359519958496, -1.0171995162963867
COMFY_BLUR_ROW = [-0.6027951, -0.8505353, -0.9831565, 0.007326551, 0.003999364, 0.0009194203, -0.0003841677]


def _comfy_case() -> tuple[torch.Tensor, torch.Tensor]:
    """A 2x3x6x7 clean estimate and a 2-head attention over 6 middle-block positions (2x3)."""
    x0 = torch.sin(torch.arange(2 * 3 * 6 * 7, dtype=torch.float32) * 0.37).reshape(2, 3, 6, 7)
    logits = torch.cos(torch.arange(2 * 2 * 6 * 6, dtype=torch.float32) * 0.53).reshape(4, 6, 6) * 3
    return x0, logits.softmax(-1)


def test_blur_map_matches_comfyui() -> None:
    x0, attn = _comfy_case()
    received = attn.reshape(2, 2, 6, 6).mean(1).sum(1)
    torch.testing.assert_close(received, torch.tensor(COMFY_RECEIVED), rtol=1e-6, atol=1e-6)
    out = blur_attended(x0, received, 1.3)
    weights = torch.arange(out.numel()).reshape(out.shape).float().cos()
    assert float(out.sum()) == pytest.approx(COMFY_BLUR_SUM, abs=1e-5)
    assert float((out * weights).sum()) == pytest.approx(COMFY_BLUR_WEIGHTED, abs=1e-5)
    torch.testing.assert_close(out[1, 2, 3], torch.tensor(COMFY_BLUR_ROW), rtol=1e-5, atol=1e-6)


def test_blur_map_is_a_gaussian_where_attention_is_above_the_mean() -> None:
    x0 = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    received = torch.tensor([[2.0, 0.5, 0.5, 1.0]])  # a 2x2 grid: only the top-left quarter is blurred
    out = blur_attended(x0, received, 1.5)
    line = torch.exp(-0.5 * (torch.arange(-4.0, 5.0) / 1.5) ** 2)
    line = line / line.sum()
    padded = torch.nn.functional.pad(x0, [4] * 4, mode="reflect")
    blurred = torch.einsum("i,j,bcij->bc", line, line, padded[:, :, 0:9, 0:9])  # pixel (0, 0)
    torch.testing.assert_close(out[:, :, 0, 0], blurred)
    torch.testing.assert_close(out[:, :, :3, :3], gaussian_blur(x0, 1.5)[:, :, :3, :3])
    torch.testing.assert_close(out[:, :, 3:, :], x0[:, :, 3:, :])
    torch.testing.assert_close(out[:, :, :, 3:], x0[:, :, :, 3:])
    assert torch.equal(gaussian_blur(x0, 0.0), x0)


def test_grid_follows_the_latents_aspect() -> None:
    assert _grid_rows(8, 8, 16) == 4
    assert _grid_rows(6, 12, 18) == 3  # 3 x 6
    assert _grid_rows(16, 8, 8) == 4  # 4 x 2
    assert _grid_rows(8, 8, 1) == 1  # ComfyUI's search finds nothing there: the nearest divisor


def test_recorded_attention_is_the_attention_and_the_output_is_unchanged() -> None:
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    torch.manual_seed(3)
    attn = Attention(query_dim=16, heads=2, dim_head=8)
    hidden = torch.randn(3, 6, 16)
    got: list[torch.Tensor] = []
    recording = RecordingSelfAttention(AttnProcessor2_0(), got.append)
    with torch.no_grad():
        out = recording(attn, hidden)
        assert torch.equal(out, AttnProcessor2_0()(attn, hidden))
        q = attn.to_q(hidden).reshape(3, 6, 2, 8).transpose(1, 2)
        k = attn.to_k(hidden).reshape(3, 6, 2, 8).transpose(1, 2)
        probs = (q @ k.transpose(-1, -2) / math.sqrt(8)).softmax(-1)  # [batch, heads, query, key]
    assert len(got) == 1
    torch.testing.assert_close(got[0], probs.mean(1).sum(1))
    torch.testing.assert_close(attention_received(attn, hidden), probs.mean(1).sum(1))
    recording(attn, hidden, encoder_hidden_states=torch.randn(3, 4, 16))  # cross-attention: not recorded
    assert len(got) == 1


def test_the_hook_guides_away_from_the_prediction_for_the_blurred_estimate() -> None:
    g = torch.Generator().manual_seed(1)
    x, uncond_d, guided = (torch.randn(1, 4, 8, 8, generator=g) for _ in range(3))
    negative = conditioning(2)
    recorder = RecordMidSelfAttention()
    received = torch.rand(1, 16, generator=g) * 2
    recorder.records.append(Record(negative[0][0].clone(), received, (8, 8)))
    calls: list[tuple[Any, Any]] = []

    def predict(conditioning: Any, x_k: Any = None, model: Any = None) -> torch.Tensor:
        calls.append((conditioning, x_k))
        return x_k * 0.5

    args = {"denoised": guided, "uncond": negative, "input": x, "uncond_denoised": uncond_d, "weft_predict": predict}
    got = SAGHook(0.7, 2.0, recorder)(args)
    degraded = blur_attended(uncond_d, received, 2.0)
    torch.testing.assert_close(got, guided + (degraded - (degraded + x - uncond_d) * 0.5) * 0.7)
    assert len(calls) == 1 and calls[0][0] is negative
    assert not recorder.records
    with pytest.raises(SAGError, match="needs a negative prompt"):
        SAGHook(0.7, 2.0, recorder)({**args, "uncond": None})


def ksample(model: Any, size: int = 64, negative: Any = None) -> Any:
    out = sn.KSampler().run(
        model, 4, STEPS, 5.0, "euler", "karras", conditioning(1), negative or conditioning(2), empty(1, size), 1.0
    )
    return (out.outputs[0]["samples"], out.ui["weft_report"]) if hasattr(out, "outputs") else (out[0]["samples"], [])


def test_scale_0_is_the_plain_run(tiny_model) -> None:
    plain, _ = ksample(tiny_model)
    patched, reports = ksample(SelfAttentionGuidance().run(tiny_model, 0.0, 2.0)[0])
    torch.testing.assert_close(patched, plain, **TOL)
    assert reports == []


def test_sag_changes_the_picture_at_one_more_evaluation_per_step(tiny_model) -> None:
    model = SelfAttentionGuidance().run(tiny_model, 0.8, 2.0)[0]
    layers = mid_self_attentions(tiny_model.prepare())
    before = [layer.processor for layer in layers]
    plain, _ = ksample(tiny_model)
    guided, reports = ksample(model)
    assert (guided - plain).abs().max() > 1e-2 and torch.isfinite(guided).all()
    assert reports == [{"name": "SelfAttentionGuidance", "extra_evaluations": STEPS}]  # the map came along
    assert [layer.processor for layer in layers] == before
    again, _ = ksample(model)
    torch.testing.assert_close(again, guided)


def test_a_regional_negative_prompt_gives_the_map_of_its_full_frame_entry(tiny_model) -> None:
    area = [[conditioning(5)[0][0], {"pooled_output": None, "area": (4, 8, 0, 0), "strength": 1.0}]]
    guided, reports = ksample(SelfAttentionGuidance().run(tiny_model, 0.8, 2.0)[0], negative=area + conditioning(2))
    assert torch.isfinite(guided).all()
    assert reports == [{"name": "SelfAttentionGuidance", "extra_evaluations": STEPS}]


def test_without_the_negative_prompt_in_the_step_the_map_is_evaluated_again(tiny_model) -> None:
    """A guidance interval skips the unconditional half outside its window: SAG evaluates it then."""
    from nodes.guidance.interval import CFGGuidanceInterval

    model = CFGGuidanceInterval().run(SelfAttentionGuidance().run(tiny_model, 0.8, 2.0)[0], 0.0, 0.5)[0]
    guided, reports = ksample(model)
    by_name = {r["name"]: r for r in reports}
    unguided = by_name["CFGGuidanceInterval"]["unguided_calls"]
    assert 0 < unguided < STEPS and torch.isfinite(guided).all()
    assert by_name["SelfAttentionGuidance"]["extra_evaluations"] == STEPS + unguided


def test_the_hook_records_the_map_itself_when_no_call_had_it() -> None:
    g = torch.Generator().manual_seed(2)
    x, uncond_d, guided = (torch.randn(1, 4, 8, 8, generator=g) for _ in range(3))
    negative = conditioning(2)
    recorder = RecordMidSelfAttention()
    received = torch.rand(1, 16, generator=g) * 2
    calls: list[Any] = []

    def predict(conditioning: Any, x_k: Any = None, model: Any = None) -> torch.Tensor:
        calls.append(x_k)
        if x_k is None:  # the recording evaluation at the step's input
            recorder.records.append(Record(negative[0][0].expand(1, -1, -1), received, (8, 8)))
        return uncond_d if x_k is None else x_k * 0.5

    args = {"denoised": guided, "uncond": negative, "input": x, "uncond_denoised": uncond_d, "weft_predict": predict}
    hook = SAGHook(0.7, 2.0, recorder)
    got = hook(args)
    degraded = blur_attended(uncond_d, received, 2.0)
    torch.testing.assert_close(got, guided + (degraded - (degraded + x - uncond_d) * 0.5) * 0.7)
    assert calls[0] is None and len(calls) == 2 and hook.evaluations == 2


def test_latents_of_4_pixels_a_side_are_left_alone(tiny_model) -> None:
    plain, _ = ksample(tiny_model, size=32)
    patched, reports = ksample(SelfAttentionGuidance().run(tiny_model, 0.8, 2.0)[0], size=32)
    torch.testing.assert_close(patched, plain, **TOL)
    assert reports == []


def test_sag_without_a_negative_prompt_says_what_it_needs(tiny_model) -> None:
    model = SelfAttentionGuidance().run(tiny_model, 0.8, 2.0)[0]
    guider = sn.BasicGuider().run(model, conditioning(1))[0]
    sigmas = sn.BasicScheduler().run(tiny_model, "karras", 2, 1.0)[0]
    with pytest.raises(SAGError, match="needs a negative prompt"):
        sn.SamplerCustomAdvanced().run(
            sn.RandomNoise().run(1)[0], guider, sn.KSamplerSelect().run("euler")[0], sigmas, empty()
        )


def test_the_node_names_the_paper() -> None:
    assert "Hong et al." in SelfAttentionGuidance.description
    assert "Self-Attention Guidance" in SelfAttentionGuidance.description
