"""Fixtures for the guidance tests: the diffusion tests' one-thread rule, the shared tiny
random-weight SD1-layout UNet (``tests/support/tiny_unet.py``) under short names, and the built-in
shapes model loaded once per session (a real, trained SD1-layout checkpoint)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.diffusion.conftest import one_torch_thread  # noqa: F401  (autouse: one torch thread)


@pytest.fixture(scope="module")
def model(tiny_model: Any) -> Any:
    """The tiny SD1-layout MODEL of ``tests/support/tiny_unet.py`` (random weights, 8x8 latents)."""
    return tiny_model


@pytest.fixture(scope="module")
def positive(tiny_positive: list) -> list:
    return tiny_positive


@pytest.fixture(scope="module")
def negative(tiny_negative: list) -> list:
    return tiny_negative


@pytest.fixture(scope="session")
def shapes() -> dict[str, Any]:
    """``{"model", "clip", "vae", "negative"}`` of ``models_builtin/checkpoints/weft-shapes.safetensors``."""
    from nodes.diffusion.loaders import load_checkpoint
    from nodes.paths import BUILTIN_MODELS
    from weft_tools.shapes import evaluate as ev

    model, clip, vae = load_checkpoint(BUILTIN_MODELS / "checkpoints" / ev.CHECKPOINT)
    return {"model": model, "clip": clip, "vae": vae, "negative": clip.encode_conditioning("")}
