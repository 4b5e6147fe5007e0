"""Fixtures for the diffusion tests: the tiny models, built once per session, as a models root.

``tiny_models`` builds every tiny model (``weft_tools.tiny_models``) into a session temp dir,
laid out as a ComfyUI-style models folder; ``tiny_paths`` points ``nodes.paths`` at it. The
tests then load them through exactly the loader code a user's files go through. Set
``WEFT_TINY_MODELS=/some/dir`` to reuse a folder built earlier with
``python -m weft_tools.tiny_models /some/dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models root holding checkpoints/, diffusers/, loras/, controlnet/ with the tiny models."""
    prebuilt = os.environ.get("WEFT_TINY_MODELS")
    if prebuilt and (Path(prebuilt) / "checkpoints" / "tiny-sdxl.safetensors").exists():
        return Path(prebuilt)
    from weft_tools.tiny_models import build_all

    root = tmp_path_factory.mktemp("models")
    build_all(root)
    return root


@pytest.fixture(scope="session")
def tiny_paths(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory):
    """``nodes.paths`` configured with the tiny models as its models root; restored afterwards."""
    import nodes.paths as paths_module

    previous = paths_module._paths
    base = tmp_path_factory.mktemp("weft-home")
    paths = paths_module.configure(base, models_dir=tiny_models, create=False)
    for d in (paths.input, paths.output, paths.temp, paths.user):
        d.mkdir(parents=True, exist_ok=True)
    yield paths
    paths_module._paths = previous


@pytest.fixture
def manager():
    """A fresh process-wide model manager (the previous one is freed)."""
    from nodes.diffusion.model_manager import reset_manager

    yield reset_manager()
