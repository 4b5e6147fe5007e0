"""Fixtures for the guidance tests: the diffusion tests' one-thread rule and the shared tiny
random-weight SD1-layout UNet (``tests/support/tiny_unet.py``) under short names. The built-in
shapes model's fixtures, ``shapes`` and ``shapes_cfg``, come from ``tests/support/shapes_drawing.py``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.torch_threads import one_torch_thread  # noqa: F401  (autouse: one torch thread)


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
