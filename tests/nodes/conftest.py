"""Fixtures for the node-pack tests: one torch thread, a Weft home, the tiny checkpoints.

The tiny models (``weft_tools.tiny_models``, real architectures with seeded random weights)
are built once per session as a ComfyUI-style models folder (sd1 and sdxl only: what these
tests load); ``WEFT_TINY_MODELS=/dir`` reuses a folder built earlier with
``python -m weft_tools.tiny_models /dir``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


#: autouse: one torch thread for every test here
from tests.support.torch_threads import one_torch_thread  # noqa: F401


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prebuilt = os.environ.get("WEFT_TINY_MODELS")
    if prebuilt and (Path(prebuilt) / "checkpoints" / "tiny-sdxl.safetensors").exists():
        return Path(prebuilt)
    from weft_tools.tiny_models import build_all

    root = tmp_path_factory.mktemp("models")
    build_all(root, families=("sd1", "sdxl"))
    return root


@pytest.fixture
def weft_home(tmp_path: Path) -> Iterator[Any]:
    """``nodes.paths`` on a fresh base folder (input/, output/, temp/) with no models, for one test."""
    import nodes.paths as paths_module

    with paths_module.using(paths_module.Paths.at(tmp_path, builtin_models=None)) as paths:
        yield paths


@pytest.fixture
def model_home(tmp_path: Path, tiny_models: Path) -> Iterator[Any]:
    """Like ``weft_home``, with the tiny models as the models folder."""
    import nodes.paths as paths_module

    with paths_module.using(paths_module.Paths.at(tmp_path, models_dir=tiny_models, builtin_models=None)) as paths:
        yield paths
