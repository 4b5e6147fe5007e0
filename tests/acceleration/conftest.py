"""Fixtures for the acceleration tests: the project's tiny SD1 and SDXL UNets as MODELs.

The UNets come from ``weft_tools.tiny_models.build_family`` (the real architectures with
seeded random weights, the same modules the tiny checkpoint files hold), built in memory and
handed to the model manager; the ControlNet is ``build_controlnet``'s, loaded from a temp folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


#: autouse: one torch thread for every test here
from tests.support.torch_threads import one_torch_thread  # noqa: F401


@pytest.fixture(scope="session")
def tiny_families() -> dict[str, dict[str, Any]]:
    """The tiny sd1 and sdxl modules (UNet, VAE, text encoders), built once."""
    from weft_tools.tiny_models import build_family

    return {family: build_family(family) for family in ("sd1", "sdxl")}


@pytest.fixture(scope="session")
def unets(tiny_families: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {family: modules["unet"] for family, modules in tiny_families.items()}


@pytest.fixture(scope="session")
def make_model(unets: dict[str, Any]) -> Callable[[str], Any]:
    """``make_model(family)``: a fresh MODEL (no wrappers) on the tiny UNet of ``family``."""
    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel

    def make(family: str) -> Any:
        unet = unets[family]
        handle = get_manager().handle(("tests.acceleration", family), "unet", lambda: unet, name=f"tiny-{family}")
        return DiffusionModel(handle, family=family, name=f"tiny-{family}")

    return make


@pytest.fixture(scope="session")
def controlnet(tiny_families: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny sd1 ControlNet (``build_controlnet``) as a CONTROL_NET value."""
    from diffusers import ControlNetModel

    from nodes.diffusion.control import ControlNet
    from nodes.diffusion.model_manager import get_manager
    from weft_tools.tiny_models import build_controlnet

    root: Path = tmp_path_factory.mktemp("controlnet")
    folder, _ = build_controlnet(tiny_families["sd1"], root / "tiny-sd1-controlnet", root / "cn.safetensors")
    module = ControlNetModel.from_pretrained(folder).eval()
    handle = get_manager().handle(
        ("tests.acceleration", "controlnet"), "controlnet", lambda: module, name="tiny-sd1-controlnet"
    )
    return ControlNet(handle, "sd1", "tiny-sd1-controlnet")
