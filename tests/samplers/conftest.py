"""Fixtures for the sampler tests: the tiny random SD1 UNet (``tests.support.tiny_unet``) as
MODEL and conditionings, and an engine whose registry can hand them to real prompts."""

from __future__ import annotations

import os
from typing import Any

import pytest

from .prompts import LatentMean, TinySource

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


#: autouse: one torch thread for every test here
from tests.support.torch_threads import one_torch_thread  # noqa: F401


@pytest.fixture(scope="module")
def model(tiny_model: Any) -> Any:
    return tiny_model


@pytest.fixture(scope="module")
def positive(tiny_positive: Any) -> Any:
    return tiny_positive


@pytest.fixture(scope="module")
def negative(tiny_negative: Any) -> Any:
    return tiny_negative


@pytest.fixture
def executor(model: Any, positive: Any, negative: Any) -> Any:
    from engine import Executor
    from nodes.registry import builtin_registry

    TinySource.values = (model, positive, negative)
    registry = builtin_registry()
    registry.register(TinySource, pack="tests")
    registry.register(LatentMean, pack="tests")
    return Executor(registry)
