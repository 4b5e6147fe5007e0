"""The piecewise UNet forward (nodes.acceleration.unet_forward) against diffusers' own forward,
on the tiny SD1 and SDXL UNets: whole passes, ControlNet residuals, odd latent sizes, and the
cached passes of both accelerators when the cache was filled by the very same inputs (then a
shallow or decoder-only pass must give exactly the full output, at every depth)."""

from __future__ import annotations

import pytest
import torch

from nodes.acceleration.deepcache import DeepCacheWrapper
from nodes.acceleration.faster_diffusion import FasterDiffusionWrapper
from nodes.acceleration.unet_forward import UNetPass, forward, skip_count, unsupported_reason

CROSS_DIM = {"sd1": 32, "sdxl": 96}


def unet_inputs(family: str, batch: int = 2, height: int = 8, width: int = 8, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, 4, height, width), generator=g)
    t = torch.full((batch,), 601.0)
    cond = torch.randn((batch, 77, CROSS_DIM[family]), generator=g)
    kwargs = {}
    if family == "sdxl":
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn((batch, 32), generator=g),
            "time_ids": torch.tensor(
                [[height * 8, width * 8, 0, 0, height * 8, width * 8]] * batch, dtype=torch.float32
            ),
        }
    return x, t, cond, kwargs


def control_residuals(controlnet, x, t, cond):
    module = controlnet.handle.on_device()
    hint = torch.rand((x.shape[0], 3, x.shape[2] * 8, x.shape[3] * 8), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        down, mid = module(x, t, encoder_hidden_states=cond, controlnet_cond=hint, return_dict=False)
    return {"down_block_additional_residuals": tuple(down), "mid_block_additional_residual": mid}


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
@pytest.mark.parametrize("size", [(8, 8), (7, 9)])  # 7x9: upsamplers need explicit output sizes
def test_piecewise_forward_equals_diffusers_forward(unets, family, size):
    unet = unets[family]
    x, t, cond, kwargs = unet_inputs(family, height=size[0], width=size[1])
    with torch.no_grad():
        expected = unet(x, t, encoder_hidden_states=cond, return_dict=False, **kwargs)[0]
        got = forward(unet, x, t, cond, **kwargs)
    assert torch.equal(got, expected)


def test_piecewise_forward_with_controlnet_residuals(unets, controlnet):
    unet = unets["sd1"]
    x, t, cond, kwargs = unet_inputs("sd1")
    kwargs.update(control_residuals(controlnet, x, t, cond))
    with torch.no_grad():
        plain = unet(x, t, encoder_hidden_states=cond, return_dict=False)[0]
        expected = unet(x, t, encoder_hidden_states=cond, return_dict=False, **kwargs)[0]
        got = forward(unet, x, t, cond, **kwargs)
    assert not torch.allclose(plain, expected, atol=1e-3)  # the residuals matter...
    assert torch.equal(got, expected)  # ...and land where diffusers adds them


def test_skip_entries_are_ldm_input_blocks(unets):
    # tiny sd1/sdxl: conv_in + 2 layers + downsampler + 2 layers; SD1.5's layout would give 12
    assert skip_count(unets["sd1"]) == 6 and skip_count(unets["sdxl"]) == 6
    from diffusers import UNet2DConditionModel

    sd15_layout = UNet2DConditionModel(
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=2,
        norm_num_groups=8,
        cross_attention_dim=8,
        attention_head_dim=1,
        sample_size=8,
    )
    assert skip_count(sd15_layout) == 12


def _pass(unet, family, with_control=None, seed=0):
    x, t, cond, kwargs = unet_inputs(family, seed=seed)
    if with_control is not None:
        kwargs.update(control_residuals(with_control, x, t, cond))
    return UNetPass(unet, x, t, cond, **kwargs), (x, t, cond, kwargs)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_shallow_pass_on_its_own_cache_reproduces_the_full_output_at_every_depth(unets, family):
    unet = unets[family]
    with torch.no_grad():
        for depth in range(skip_count(unet) + 2):  # beyond the last entry: clamped
            wrapper = DeepCacheWrapper(3, depth)
            full, features = wrapper.full_pass(_pass(unet, family)[0])
            shallow = wrapper.cached_pass(_pass(unet, family)[0], features)
            assert features[0] == min(depth, skip_count(unet) - 1)
            assert torch.equal(shallow, full), depth


def test_cached_passes_with_controlnet_residuals(unets, controlnet):
    unet = unets["sd1"]
    with torch.no_grad():
        expected = forward(unet, *_pass(unet, "sd1", controlnet)[1][:3], **_pass(unet, "sd1", controlnet)[1][3])
        for wrapper in (DeepCacheWrapper(3, 2), FasterDiffusionWrapper(2)):
            full, features = wrapper.full_pass(_pass(unet, "sd1", controlnet)[0])
            cached = wrapper.cached_pass(_pass(unet, "sd1", controlnet)[0], features)
            assert torch.equal(full, expected) and torch.equal(cached, expected), wrapper
        # Faster Diffusion caches the encoder's raw features: a later call adds its own residuals
        wrapper = FasterDiffusionWrapper(2)
        _, features = wrapper.full_pass(_pass(unet, "sd1")[0])
        without = wrapper.cached_pass(_pass(unet, "sd1")[0], features)
        with_control = wrapper.cached_pass(_pass(unet, "sd1", controlnet)[0], features)
        assert not torch.allclose(without, with_control, atol=1e-3)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_decoder_only_pass_on_its_own_cache_reproduces_the_full_output(unets, family):
    unet = unets[family]
    wrapper = FasterDiffusionWrapper(2)
    with torch.no_grad():
        full, features = wrapper.full_pass(_pass(unet, family)[0])
        cached = wrapper.cached_pass(_pass(unet, family)[0], features)
        # a different timestep changes the decoder's output (it uses the current embedding)
        x, _, cond, kwargs = unet_inputs(family)
        later = wrapper.cached_pass(UNetPass(unet, x, torch.full((2,), 301.0), cond, **kwargs), features)
    assert torch.equal(cached, full)
    assert not torch.allclose(later, full, atol=1e-4)


def test_unsupported_calls_are_named(unets):
    unet = unets["sd1"]
    x, t, cond, _ = unet_inputs("sd1")
    assert unsupported_reason(unet, x, {}) is None
    assert "input channels" in unsupported_reason(unet, torch.zeros(2, 9, 8, 8), {})
    assert "down_intrablock_additional_residuals" in unsupported_reason(
        unet, x, {"down_intrablock_additional_residuals": ()}
    )
    assert "scale" in unsupported_reason(unet, x, {"cross_attention_kwargs": {"scale": 0.5}})
    with pytest.raises(ValueError, match="not supported"):
        forward(unet, x, t, cond, down_intrablock_additional_residuals=())
