"""A tiny real SD1-layout UNet (random weights) and text conditionings, for sampling tests.

Registered as a pytest plugin by ``tests/conftest.py`` so that any test package (the
diffusion core, guidance, acceleration, samplers, inversion, steering) gets the same model
through the fixtures ``tiny_model``, ``tiny_positive`` and ``tiny_negative`` instead of
importing fixtures from another test module.
"""

from __future__ import annotations

from typing import Any

import pytest

UNET_CONFIG = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(16, 32),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=4,
    norm_num_groups=8,
)


def build_unet() -> Any:
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(1234)
    return UNet2DConditionModel(**UNET_CONFIG)


def tiny_diffusion_model() -> Any:
    """The MODEL (through the process's model manager, like a loaded checkpoint's)."""
    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel

    handle = get_manager().handle(("tests.support.tiny_unet", "unet"), "unet", build_unet, name="tiny-sd1-test")
    return DiffusionModel(handle, family="sd1", name="tiny-sd1-test")


def conditioning(seed: int) -> list:
    """A CONDITIONING of random 77x32 text embeddings."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [[torch.randn((1, 77, 32), generator=g), {"pooled_output": None}]]


def empty(batch: int = 1, size: int = 64) -> dict:
    from nodes.diffusion.latent import EmptyLatentImage

    return EmptyLatentImage().run(size, size, batch)[0]


def ksample(
    model: Any,
    positive: Any,
    negative: Any,
    latent: dict,
    *,
    seed: int = 1,
    steps: int = 2,
    cfg: float = 5.0,
    sampler: str = "euler",
    scheduler: str = "karras",
    denoise: float = 1.0,
) -> dict:
    """KSampler's LATENT output (the node's own ``run``, UI reports dropped)."""
    from nodes.diffusion import sampler_nodes as sn

    out = sn.KSampler().run(model, seed, steps, cfg, sampler, scheduler, positive, negative, latent, denoise)
    return (out.outputs if hasattr(out, "outputs") else out)[0]


@pytest.fixture(scope="module")
def tiny_model() -> Any:
    return tiny_diffusion_model()


@pytest.fixture(scope="module")
def tiny_positive() -> list:
    return conditioning(1)


@pytest.fixture(scope="module")
def tiny_negative() -> list:
    return conditioning(2)
