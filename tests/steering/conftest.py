"""Fixtures for the steering tests: the project's tiny SD1 UNet and VAE as a MODEL and a VAE.

Built in memory with ``weft_tools.tiny_models.build_family`` (the real architectures, seeded
random weights: the modules the tiny checkpoint files hold) and handed to the model manager.
The conditionings are seeded random embeddings, as in the sampling tests.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


#: autouse: one torch thread for every test here
from tests.support.torch_threads import one_torch_thread  # noqa: F401


@pytest.fixture(scope="session")
def tiny_sd1() -> dict[str, Any]:
    from weft_tools.tiny_models import build_family

    return build_family("sd1")


@pytest.fixture(scope="session")
def model(tiny_sd1: dict[str, Any]) -> Any:
    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel

    unet = tiny_sd1["unet"]
    handle = get_manager().handle(("tests.steering", "unet"), "unet", lambda: unet, name="tiny-sd1")
    return DiffusionModel(handle, family="sd1", name="tiny-sd1")


@pytest.fixture(scope="session")
def vae(tiny_sd1: dict[str, Any]) -> Any:
    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import VAEModel

    module = tiny_sd1["vae"]
    handle = get_manager().handle(("tests.steering", "vae"), "vae", lambda: module, name="tiny-sd1-vae")
    return VAEModel(handle, scaling_factor=0.18215, name="tiny-sd1-vae")


def _cond(seed: int, dim: int = 32) -> list:
    import torch

    g = torch.Generator().manual_seed(seed)
    return [[torch.randn((1, 77, dim), generator=g), {"pooled_output": None}]]


@pytest.fixture(scope="session")
def positive() -> list:
    return _cond(1)


@pytest.fixture(scope="session")
def negative() -> list:
    return _cond(2)
