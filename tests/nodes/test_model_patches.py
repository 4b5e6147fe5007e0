"""MODEL patch nodes on the tiny real UNet: FreeU, HyperTile, ModelSamplingDiscrete, merges."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nodes.model_patches import freeu, hypertile, merging, model_sampling
from nodes.model_patches.unet_hooks import decoder_resnets


def predict(model: Any, seed: int = 0, t: float = 600.0, size: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((1, 4, size, size), generator=g)
    c = torch.randn((1, 77, 32), generator=g)
    return model.predict_noise(x, torch.tensor([t]), c)


# -- FreeU --------------------------------------------------------------------------------------


def test_fourier_filter() -> None:
    x = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(freeu.fourier_filter(x, 1, 1.0), x, rtol=0, atol=1e-5)
    flat = torch.full((1, 1, 8, 8), 2.0)  # only the zero frequency, which sits in the centre block
    torch.testing.assert_close(freeu.fourier_filter(flat, 1, 0.25), flat * 0.25, rtol=0, atol=1e-5)
    ripple = torch.tensor([1.0, -1.0] * 4).repeat(8, 1).view(1, 1, 8, 8)  # the highest frequency only
    torch.testing.assert_close(freeu.fourier_filter(ripple, 1, 0.0), ripple, rtol=0, atol=1e-5)


def test_decoder_stages_follow_comfyui_channel_rule() -> None:
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        block_out_channels=(8, 16, 32, 32),
        down_block_types=("DownBlock2D",) * 4,
        up_block_types=("UpBlock2D",) * 4,
        norm_num_groups=8,
        cross_attention_dim=8,
        layers_per_block=2,
        sample_size=8,
        mid_block_type=None,
    )
    channels = [c for _, c in decoder_resnets(unet)]
    # ComfyUI's 12 output blocks of an SD1.5-shaped UNet, h's channels before each joins its skip
    assert channels == [32, 32, 32, 32, 32, 32, 32, 16, 16, 16, 8, 8]
    scales = freeu.FreeUHooks(1.1, 1.2, 0.9, 0.2).scales(unet)
    assert [scales.get(c) for c in channels] == [(1.1, 0.9)] * 7 + [(1.2, 0.2)] * 3 + [None] * 2


@pytest.mark.parametrize("node", [freeu.FreeU, freeu.FreeU_V2])
def test_freeu_identity_and_change(tiny_model, node) -> None:
    plain = predict(tiny_model)
    same = node().run(tiny_model, 1.0, 1.0, 1.0, 1.0)[0]
    torch.testing.assert_close(predict(same), plain, rtol=1e-4, atol=1e-5)
    changed = node().run(tiny_model, 1.1, 1.2, 0.9, 0.2)[0]
    assert (predict(changed) - plain).abs().max() > 1e-3
    assert torch.equal(predict(tiny_model), plain)  # the shared UNet is left as it was
    assert len(changed.wrappers) == len(tiny_model.wrappers) + 1


def test_freeu_reweights_the_decoder_input(tiny_model) -> None:
    unet = tiny_model.prepare()
    resnet, channels = next((r, c) for r, c in decoder_resnets(unet) if c == 2 * unet.config.block_out_channels[0])
    seen: list[torch.Tensor] = []
    handle = resnet.norm1.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    try:
        predict(tiny_model)
        patched = freeu.FreeU().run(tiny_model, 1.0, 1.5, 1.0, 0.5)[0]
        predict(patched)
    finally:
        handle.remove()
    before, after = seen[0], seen[1]
    half = channels // 2
    torch.testing.assert_close(after[:, :half], before[:, :half] * 1.5)
    torch.testing.assert_close(after[:, half:channels], before[:, half:channels])
    torch.testing.assert_close(
        after[:, channels:], freeu.fourier_filter(before[:, channels:], 1, 0.5), rtol=1e-4, atol=1e-5
    )


# -- HyperTile ----------------------------------------------------------------------------------


def test_hypertile_plan() -> None:
    hooks = hypertile.HyperTileHooks(32, 2, 0, False)
    hooks._shape = (8, 8)
    assert hooks.plan(64) == (2, 2, 8, 8)  # 4-pixel tiles (32 px) of an 8x8 latent
    assert hooks.plan(16) is None  # a lower-resolution layer: max_depth 0
    deep = hypertile.HyperTileHooks(32, 2, 1, False)
    deep._shape = (16, 16)
    assert deep.plan(64) == (2, 2, 8, 8)
    big = hypertile.HyperTileHooks(256, 2, 0, False)
    big._shape = (8, 8)
    assert big.plan(64) is None  # tiles larger than the image: untiled
    assert hypertile.random_divisor(12, 3, 1) == 4


def test_tiled_attention_is_comfyuis_arrangement() -> None:
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4).eval()
    hooks = hypertile.HyperTileHooks(32, 2, 0, False)
    hooks._shape = (8, 8)
    tokens = torch.randn((1, 64, 8))
    processor = hypertile.TiledSelfAttention(attn.processor, hooks)
    out = processor(attn, tokens)
    # by hand: queries in 4x4 spatial tiles; keys/values as 4 runs of 16 consecutive tokens
    grid = tokens.view(8, 8, 8)
    expected = torch.zeros_like(grid)
    for index, (ty, tx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        q = grid[ty * 4 : ty * 4 + 4, tx * 4 : tx * 4 + 4].reshape(1, 16, 8)
        kv = tokens[:, index * 16 : (index + 1) * 16]
        expected[ty * 4 : ty * 4 + 4, tx * 4 : tx * 4 + 4] = attn(q, encoder_hidden_states=kv).view(4, 4, 8)
    torch.testing.assert_close(out, expected.view(1, 64, 8), rtol=1e-5, atol=1e-6)
    assert processor(attn, tokens[:, :16]).shape == (1, 16, 8)  # another size: the plain attention


def test_hypertile_on_the_model(tiny_model) -> None:
    plain = predict(tiny_model)
    untiled = hypertile.HyperTile().run(tiny_model, 256, 2, 0, False)[0]
    torch.testing.assert_close(predict(untiled), plain)
    tiled = hypertile.HyperTile().run(tiny_model, 32, 2, 0, False)[0]
    assert (predict(tiled) - plain).abs().max() > 1e-4
    unet = tiny_model.prepare()
    assert not any(
        isinstance(m.processor, hypertile.TiledSelfAttention) for n, m in unet.named_modules() if n.endswith(".attn1")
    )
    torch.testing.assert_close(predict(tiny_model), plain)


# -- ModelSamplingDiscrete ------------------------------------------------------------------------


def test_model_sampling_discrete(tiny_model) -> None:
    from nodes.diffusion.samplers import model_sigmas

    v = model_sampling.ModelSamplingDiscrete().run(tiny_model, "v_prediction", False)[0]
    assert v.prediction_type == "v_prediction" and v.scheduler_config["prediction_type"] == "v_prediction"
    assert tiny_model.prediction_type == "epsilon"
    eps = model_sampling.ModelSamplingDiscrete().run(v, "eps", False)[0]
    assert eps.prediction_type == "epsilon"
    zsnr = model_sampling.ModelSamplingDiscrete().run(tiny_model, "v_prediction", True)[0]
    assert zsnr.scheduler_config["rescale_betas_zero_snr"] is True
    assert model_sigmas(zsnr.scheduler_config).sigma_max > 1000 > model_sigmas(v.scheduler_config).sigma_max
    for value in ("lcm", "x0", "img_to_img"):
        assert "not supported" in model_sampling.ModelSamplingDiscrete.validate(sampling=value)
        with pytest.raises(ValueError, match="sampling"):
            model_sampling.ModelSamplingDiscrete().run(tiny_model, value, False)


def test_zsnr_training_sigmas_follow_lin_et_al_with_comfyuis_last_value(tiny_model) -> None:
    """zsnr rescales sqrt(alpha_cumprod) to end at 0 (Lin et al. 2023, Algorithm 1), with the
    last alpha_cumprod 4.8973451890853435e-08 as in ComfyUI (sigma_max ~4519, diffusers' ~4096),
    in float64, so the run starts from ComfyUI's noise level; every other sigma is the paper's."""
    from nodes.diffusion.samplers import model_sigmas

    zsnr = model_sampling.ModelSamplingDiscrete().run(tiny_model, "v_prediction", True)[0]
    config = zsnr.scheduler_config
    assert config["beta_schedule"] == "scaled_linear"
    betas = torch.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, 1000, dtype=torch.float64) ** 2
    root = torch.cumprod(1 - betas, 0).sqrt()
    root = (root - root[-1]) * root[0] / (root[0] - root[-1])
    alphas_cumprod = root**2
    alphas_cumprod[-1] = 4.8973451890853435e-08
    expected = ((1 - alphas_cumprod) / alphas_cumprod).sqrt()
    got = model_sigmas(config)
    torch.testing.assert_close(got.sigmas.double(), expected, rtol=1e-6, atol=0)
    assert got.sigma_max == pytest.approx(4518.76, abs=0.01)


# -- merging --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_model():
    """A second tiny UNet of the same shape with other weights."""
    from diffusers import UNet2DConditionModel

    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel
    from tests.support.tiny_unet import UNET_CONFIG

    torch.manual_seed(99)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    handle = get_manager().handle(("tests.nodes", "other-unet"), "unet", lambda: unet, name="tiny-other")
    return DiffusionModel(handle, family="sd1", name="tiny-other")


def _weights(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.prepare().named_parameters()}


class AddConstant:
    """A weight patch adding ``value`` to one parameter (stands in for a LoRA)."""

    def __init__(self, name: str, value: float) -> None:
        self.name, self.value = name, value

    def applies_to(self, target: str) -> bool:
        return True

    def deltas(self, module: Any, target: str):
        param = dict(module.named_parameters())[self.name]
        yield self.name, torch.full_like(param, self.value, dtype=torch.float32)


def test_model_merge_simple(tiny_model, other_model) -> None:
    w1, w2 = _weights(tiny_model), _weights(other_model)
    merged = merging.ModelMergeSimple().run(tiny_model, other_model, 0.3)[0]
    wm = _weights(merged)
    for name in ("conv_in.weight", "up_blocks.1.attentions.0.proj_in.weight", "time_embedding.linear_1.bias"):
        torch.testing.assert_close(wm[name], 0.3 * w1[name] + 0.7 * w2[name])
    assert torch.equal(_weights(tiny_model)["conv_in.weight"], w1["conv_in.weight"])  # model1 restored when used
    torch.testing.assert_close(
        predict(merging.ModelMergeSimple().run(tiny_model, other_model, 1.0)[0]), predict(tiny_model)
    )
    torch.testing.assert_close(
        predict(merging.ModelMergeSimple().run(tiny_model, other_model, 0.0)[0]),
        predict(other_model),
        rtol=1e-4,
        atol=1e-5,
    )


def test_merge_uses_the_other_models_patches(tiny_model, other_model) -> None:
    name = "conv_in.weight"
    w1, w2 = _weights(tiny_model)[name], _weights(other_model)[name]
    patched_other = other_model.with_patch(AddConstant(name, 1.0))
    merged = merging.ModelMergeSimple().run(tiny_model, patched_other, 0.5)[0]
    torch.testing.assert_close(_weights(merged)[name], 0.5 * w1 + 0.5 * (w2 + 1.0))
    # both clones of one UNet: the LoRA'd clone merged with its base at 0.5 is half the LoRA
    lora = tiny_model.with_patch(AddConstant(name, 2.0))
    half = merging.ModelMergeSimple().run(tiny_model, lora, 0.5)[0]
    torch.testing.assert_close(_weights(half)[name], w1 + 1.0)
    torch.testing.assert_close(_weights(tiny_model)[name], w1)


def test_subtract_add_and_blocks(tiny_model, other_model) -> None:
    w1, w2 = _weights(tiny_model), _weights(other_model)
    diff = merging.ModelMergeSubtract().run(tiny_model, other_model, 2.0)[0]
    torch.testing.assert_close(_weights(diff)["conv_in.weight"], 2.0 * (w1["conv_in.weight"] - w2["conv_in.weight"]))
    added = merging.ModelMergeAdd().run(tiny_model, other_model)[0]
    torch.testing.assert_close(_weights(added)["conv_out.weight"], w1["conv_out.weight"] + w2["conv_out.weight"])
    blocks = merging.ModelMergeBlocks().run(tiny_model, other_model, 1.0, 0.0, 0.5)[0]
    wb = _weights(blocks)
    torch.testing.assert_close(wb["down_blocks.0.resnets.0.conv1.weight"], w1["down_blocks.0.resnets.0.conv1.weight"])
    torch.testing.assert_close(wb["mid_block.resnets.0.conv1.weight"], w2["mid_block.resnets.0.conv1.weight"])
    for name in ("up_blocks.0.resnets.0.conv1.weight", "conv_out.weight"):  # output blocks and the final "out"
        torch.testing.assert_close(wb[name], 0.5 * w1[name] + 0.5 * w2[name])
