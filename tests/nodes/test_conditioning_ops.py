"""CONDITIONING nodes, and the guider honouring what they set (timestep range, percentage
areas, inpainting-model inputs), on the tiny real UNet."""

from __future__ import annotations

import pytest
import torch

from nodes import conditioning_ops as co
from nodes.diffusion.conditioning import ConditioningCombine, ConditioningSetArea
from nodes.diffusion.guidance import Guider


def cond(seed: int, tokens: int = 77, dim: int = 32, pooled: bool = False) -> list:
    g = torch.Generator().manual_seed(seed)
    options = {"pooled_output": torch.randn((1, 8), generator=g) if pooled else None}
    return [[torch.randn((1, tokens, dim), generator=g), options]]


def test_concat_appends_tokens() -> None:
    a, b = cond(1), cond(2)
    out = co.ConditioningConcat().run(a, b)[0]
    assert out[0][0].shape == (1, 154, 32)
    assert torch.equal(out[0][0][:, :77], a[0][0]) and torch.equal(out[0][0][:, 77:], b[0][0])
    assert out[0][1] == a[0][1] and out[0][1] is not a[0][1]
    with pytest.raises(ValueError, match="conditioning_from"):
        co.ConditioningConcat().run(a, cond(3, dim=16))


def test_average_mixes_tokens_and_pooled() -> None:
    a, b = cond(1, pooled=True), cond(2, pooled=True)
    out = co.ConditioningAverage().run(a, b, 0.25)[0]
    assert torch.allclose(out[0][0], a[0][0] * 0.25 + b[0][0] * 0.75)
    assert torch.allclose(out[0][1]["pooled_output"], a[0][1]["pooled_output"] * 0.25 + b[0][1]["pooled_output"] * 0.75)
    # a shorter conditioning_from is zero-padded, a longer one cut to conditioning_to's length
    long_to = cond(3, tokens=154)
    mixed = co.ConditioningAverage().run(long_to, b, 0.5)[0][0][0]
    assert torch.allclose(mixed[:, 77:], long_to[0][0][:, 77:] * 0.5)
    assert co.ConditioningAverage().run(b, long_to, 0.5)[0][0][0].shape == (1, 77, 32)


def test_setters() -> None:
    a = cond(1)
    out = co.ConditioningSetAreaPercentage().run(a, 0.5, 0.25, 0.1, 0.2, 2.0)[0]
    assert out[0][1]["area"] == ("percentage", 0.25, 0.5, 0.2, 0.1) and out[0][1]["strength"] == 2.0
    assert co.ConditioningSetAreaStrength().run(a, 0.3)[0][0][1]["strength"] == 0.3
    ranged = co.ConditioningSetTimestepRange().run(a, 0.2, 0.7)[0][0][1]
    assert (ranged["start_percent"], ranged["end_percent"]) == (0.2, 0.7)
    assert "area" not in a[0][1]  # inputs untouched


def _predict(model, positive, negative=None, cfg=1.0, t=500.0, seed=0):
    x = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(seed))
    guider = Guider(model, cfg)
    guider.set_conds(positive, negative)
    return guider.predictor(x.shape, torch.device("cpu"))(x, torch.tensor([t])), x


def test_timestep_range_switches_prompts(tiny_model) -> None:
    a, b = cond(11), cond(12)
    early = co.ConditioningSetTimestepRange().run(a, 0.0, 0.5)[0]
    late = co.ConditioningSetTimestepRange().run(b, 0.5, 1.0)[0]
    both = ConditioningCombine().run(early, late)
    for t, alone in ((950.0, a), (50.0, b)):
        ranged, _ = _predict(tiny_model, both, t=t)
        plain, _ = _predict(tiny_model, alone, t=t)
        torch.testing.assert_close(ranged, plain, rtol=1e-5, atol=1e-5)
    # full range: identical to no range at all (and to the fast path)
    full = co.ConditioningSetTimestepRange().run(a, 0.0, 1.0)[0]
    torch.testing.assert_close(
        _predict(tiny_model, full, cond(13), cfg=4.0)[0],
        _predict(tiny_model, a, cond(13), cfg=4.0)[0],
        rtol=1e-5,
        atol=1e-5,
    )


def test_no_entry_in_range_predicts_zero_denoised(tiny_model) -> None:
    from nodes.diffusion.cfg_hooks import CallSpace

    early = co.ConditioningSetTimestepRange().run(cond(11), 0.0, 0.5)[0]
    out, x = _predict(tiny_model, early, t=50.0)
    space = CallSpace(tiny_model.prediction_type, tiny_model.scheduler_config)
    sigma = space.sigma(torch.tensor([50.0]), 1)
    torch.testing.assert_close(space.denoised(out, x, sigma), torch.zeros_like(x), rtol=0, atol=1e-4)


def test_percentage_area_equals_the_same_pixel_area(tiny_model) -> None:
    a, b = cond(21), cond(22)
    by_percent = co.ConditioningSetAreaPercentage().run(a, 0.5, 0.5, 0.25, 0.5, 1.0)[0]
    by_pixels = ConditioningSetArea().run(a, 32, 32, 16, 32, 1.0)  # 64 px image: the same rectangle
    percent, _ = _predict(tiny_model, ConditioningCombine().run(b, by_percent))
    pixels, _ = _predict(tiny_model, ConditioningCombine().run(b, by_pixels))
    whole, _ = _predict(tiny_model, ConditioningCombine().run(b, a))
    torch.testing.assert_close(percent, pixels)
    assert not torch.allclose(percent, whole)


@pytest.fixture(scope="module")
def tiny_vae():
    from diffusers import AutoencoderKL

    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import VAEModel
    from weft_tools.tiny_models import VAE_CONFIG

    torch.manual_seed(5)
    module = AutoencoderKL(**VAE_CONFIG).eval()
    handle = get_manager().handle(("tests.nodes", "vae"), "vae", lambda: module, name="tiny-vae")
    return VAEModel(handle, scaling_factor=0.18215, downscale=8, name="tiny-vae")


@pytest.fixture(scope="module")
def inpaint_model():
    """The tiny SD1 UNet with SD inpainting's 9 input channels (latent, mask, masked-image latent)."""
    from diffusers import UNet2DConditionModel

    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel
    from tests.support.tiny_unet import UNET_CONFIG

    torch.manual_seed(7)
    unet = UNet2DConditionModel(**{**UNET_CONFIG, "in_channels": 9})
    handle = get_manager().handle(("tests.nodes", "inpaint-unet"), "unet", lambda: unet, name="tiny-inpaint")
    return DiffusionModel(handle, family="sd1", name="tiny-inpaint")


def test_inpaint_model_conditioning_outputs(tiny_vae) -> None:
    pixels = torch.rand((1, 64, 64, 3), generator=torch.Generator().manual_seed(3))
    mask = torch.zeros((1, 32, 32))
    mask[:, 8:24, 8:24] = 1.0
    positive, negative, latent = co.InpaintModelConditioning().run(cond(1), cond(2), tiny_vae, pixels, mask, True)
    torch.testing.assert_close(latent["samples"], tiny_vae.encode(pixels))
    assert latent["noise_mask"].shape == (1, 1, 64, 64) and latent["noise_mask"][0, 0, 32, 32] == 1
    grey = pixels.clone()
    grey[:, 16:48, 16:48] = 0.5
    for c in (positive, negative):
        torch.testing.assert_close(c[0][1]["concat_latent_image"], tiny_vae.encode(grey))
        assert c[0][1]["concat_mask"] is latent["noise_mask"]
    _, _, no_mask = co.InpaintModelConditioning().run(cond(1), cond(2), tiny_vae, pixels, mask, False)
    assert "noise_mask" not in no_mask


def test_inpainting_inputs_reach_a_9_channel_unet(tiny_vae, inpaint_model, tiny_model) -> None:
    pixels = torch.rand((1, 64, 64, 3), generator=torch.Generator().manual_seed(4))
    mask = torch.zeros((1, 64, 64))
    mask[:, :, 32:] = 1.0
    positive, negative, _ = co.InpaintModelConditioning().run(cond(1), cond(2), tiny_vae, pixels, mask, True)
    out, x = _predict(inpaint_model, positive, negative, cfg=3.0, t=400.0)
    # by hand: the UNet input is [latent, mask at latent size, scaled masked-image latent]
    m = torch.nn.functional.interpolate(positive[0][1]["concat_mask"], size=(8, 8), mode="bilinear").round()
    concat = torch.cat([m, inpaint_model.process_in(positive[0][1]["concat_latent_image"])], dim=1)
    t = torch.tensor([400.0])
    uncond = inpaint_model.predict_noise(x, t, negative[0][0], concat=concat)
    conditional = inpaint_model.predict_noise(x, t, positive[0][0], concat=concat)
    torch.testing.assert_close(out, uncond + 3.0 * (conditional - uncond), rtol=1e-4, atol=1e-5)
    # a 4-channel model ignores them: same prediction as without, on the fast path
    plain, _ = _predict(tiny_model, cond(1), cond(2), cfg=3.0, t=400.0)
    with_inputs, _ = _predict(tiny_model, positive, negative, cfg=3.0, t=400.0)
    torch.testing.assert_close(with_inputs, plain)


def test_fast_path_is_kept_for_plain_entries(tiny_model, monkeypatch) -> None:
    from nodes.diffusion import guidance

    calls = []
    original = guidance.Guider._combine

    def spy(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(guidance.Guider, "_combine", spy)
    _predict(tiny_model, cond(1), cond(2), cfg=3.0)
    assert not calls
    _predict(tiny_model, co.ConditioningSetTimestepRange().run(cond(1), 0.0, 0.5)[0], cond(2), cfg=3.0)
    assert calls
