"""The shape inference on the published full-size layouts (built on the meta device, no weights,
no download): SD1.5, SD2.1 and SDXL UNets, their VAE and text encoders infer back to models
with the same parameter shapes and attention heads."""

from __future__ import annotations

import pytest

from nodes.diffusion import detect
from nodes.diffusion import single_file as sf

SD15 = {
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "attention_head_dim": 8,
}
SD21 = {
    **SD15,
    "cross_attention_dim": 1024,
    "attention_head_dim": [5, 10, 20, 20],
    "use_linear_projection": True,
    "upcast_attention": True,
}
SDXL = {
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
VAE = {
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}


def _meta(factory):
    from accelerate import init_empty_weights

    with init_empty_weights():
        return factory()


def _heads(model) -> list[int]:
    from diffusers.models.attention_processor import Attention

    return [m.heads for m in model.modules() if isinstance(m, Attention)]


def _shapes(model) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("family", "config"), [("sd1", SD15), ("sd2", SD21), ("sdxl", SDXL)])
def test_full_size_unet_layouts_infer_back(family, config):
    from diffusers import UNet2DConditionModel

    real = _meta(lambda: UNet2DConditionModel(**config))
    ldm = {sf.unet_ldm_name(k, real.config): v for k, v in _shapes(real).items()}
    assert detect.unet_family(ldm, "real") == family
    inferred = detect.infer_unet_config(ldm, family, "real")
    rebuilt = _meta(lambda: UNet2DConditionModel.from_config(inferred))
    assert _shapes(rebuilt) == _shapes(real)
    assert _heads(rebuilt) == _heads(real)


def test_full_size_vae_layout_infers_back():
    from diffusers import AutoencoderKL

    real = _meta(lambda: AutoencoderKL(**VAE))
    ldm = {sf.vae_ldm_name(k, real.config): v for k, v in _shapes(real).items()}
    rebuilt = _meta(lambda: AutoencoderKL.from_config(detect.infer_vae_config(ldm, "sd1")))
    assert _shapes(rebuilt) == _shapes(real)


@pytest.mark.parametrize(
    ("hidden", "layers", "heads", "style"),
    [
        (768, 12, 12, "hf"),  # OpenAI CLIP ViT-L/14 (SD1.x, SDXL's first encoder)
        (1024, 24, 16, "openclip"),  # OpenCLIP ViT-H/14 (SD2.x)
        (1280, 32, 20, "openclip"),  # OpenCLIP ViT-bigG/14 (SDXL's second encoder)
    ],
)
def test_full_size_text_encoder_layouts_infer_back(hidden, layers, heads, style):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        projection_dim=hidden,
        vocab_size=49408,
    )
    real = _meta(lambda: CLIPTextModelWithProjection(config))
    shapes = _shapes(real)
    if style == "hf":
        ldm = {sf.clip_hf_ldm_name(k): v for k, v in shapes.items()}
    else:
        ldm = {}
        for k, v in shapes.items():
            name, part = sf.clip_openclip_ldm_names(k)
            if part is None:
                ldm[name] = v[::-1] if name == "text_projection" else v
            else:
                ldm[name] = (v[0] * 3, *v[1:])
    inferred = detect.infer_clip_config(ldm, style)
    assert (inferred["hidden_size"], inferred["num_hidden_layers"], inferred["num_attention_heads"]) == (
        hidden,
        layers,
        heads,
    )
    rebuilt = _meta(lambda: CLIPTextModelWithProjection(CLIPTextConfig(**inferred)))
    assert _shapes(rebuilt) == shapes


@pytest.mark.parametrize("config", [SD15, SDXL], ids=["sd15", "sdxl"])
def test_full_size_controlnet_layouts_infer_back(config):
    from diffusers import ControlNetModel

    cn_config = {k: v for k, v in config.items() if k != "up_block_types"}
    real = _meta(lambda: ControlNetModel(**cn_config))
    ldm = {sf.unet_ldm_name(k, real.config): v for k, v in _shapes(real).items()}
    inferred = detect.infer_controlnet_config(ldm, "real")
    inferred.pop("_family")
    rebuilt = _meta(lambda: ControlNetModel.from_config(inferred))
    assert _shapes(rebuilt) == _shapes(real)
    assert _heads(rebuilt) == _heads(real)
