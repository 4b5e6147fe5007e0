"""The shapes model's architecture: SD1.x-layout components, sized for 64x64 pictures on a CPU.

The layout is Stable Diffusion 1.x's exactly (AutoencoderKL with an 8x downscale and 4 latent
channels, a UNet2DConditionModel with cross-attention, a CLIP text encoder over the real
49,408-token BPE vocabulary), so the trained file loads through the same code as any SD1.5
checkpoint and ComfyUI's latent conventions hold (``EmptyLatentImage`` 64x64 -> 8x8 latents,
scaling factor 0.18215). Only the widths are small:

* VAE: channels (32, 32, 64, 64) as trained (the training plan's ``vae_channels``), one ResNet
  block per level; 64x64x3 <-> 8x8x4. The shipped file's are (32, 32, 128, 128): the plan's
  widen stage doubles the latent-side levels without changing the encoder's function.
* UNet: two levels (64, 128) at 8x8 and 4x4, one ResNet block each (half the cost of two, so
  twice the training steps in the same CPU time), cross-attention at both and in the middle block.
  Attention at the latent's full resolution is what lets the text decide *where* a shape goes.
* Text encoder: CLIP with hidden size 64, two layers, trained jointly with the UNet. SD1's
  rule of one attention head per 64 channels holds, so the file infers back to this config.
* ControlNet: ``ControlNetModel.from_unet`` of that UNet; its hint encoder takes the 64x64
  mask (or edge map) down 8x in three strided steps.

The UNet uses eight heads per attention block because that is what SD1-layout files imply
(``nodes.diffusion.detect``), and epsilon prediction because ComfyUI reads every SD1 file so.
"""

from __future__ import annotations

from typing import Any

VOCAB = 49408
SCALING_FACTOR = 0.18215  # SD1's, fixed by the family: the trained latents are rescaled to it

VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": [32, 32, 64, 64],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "norm_num_groups": 32,
    "sample_size": 64,
    "scaling_factor": SCALING_FACTOR,
}

UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": [64, 128],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 64,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}

CLIP_CONFIG: dict[str, Any] = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 1,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 64,
    "layer_norm_eps": 1e-5,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 1,
}

CONTROLNET_HINT_CHANNELS = (16, 32, 32, 64)

#: SD1's training noise schedule (what every SD1 sampler assumes)
SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def make_vae(channels: tuple[int, ...] | None = None) -> Any:
    from diffusers import AutoencoderKL

    config = dict(VAE_CONFIG)
    if channels is not None:
        config["block_out_channels"] = list(channels)
    return AutoencoderKL(**config)


def make_unet() -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**UNET_CONFIG)


def make_text_encoder() -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**CLIP_CONFIG))


def make_controlnet(unet: Any) -> Any:
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONTROLNET_HINT_CHANNELS)


def alphas_cumprod() -> Any:
    """SD1's cumulative alphas (scaled-linear betas), float64 for exact noise levels."""
    import torch

    betas = (
        torch.linspace(
            SCHEDULE["beta_start"] ** 0.5,
            SCHEDULE["beta_end"] ** 0.5,
            SCHEDULE["num_train_timesteps"],
            dtype=torch.float64,
        )
        ** 2
    )
    return torch.cumprod(1.0 - betas, dim=0)
