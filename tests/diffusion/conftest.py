"""Fixtures for the diffusion tests: the tiny models, built once per session, as a models root.

``tiny_models`` builds every tiny model (``weft_tools.tiny_models``) into a session temp dir,
laid out as a ComfyUI-style models folder; ``tiny_paths`` points ``nodes.paths`` at it. The
tests then load them through exactly the loader code a user's files go through. Set
``WEFT_TINY_MODELS=/some/dir`` to reuse a folder built earlier with
``python -m weft_tools.tiny_models /some/dir``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


#: autouse: one torch thread for every test here
from tests.support.torch_threads import one_torch_thread  # noqa: F401


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
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Weft base directory (input/, output/, temp/, user/) for the diffusion tests."""
    base = tmp_path_factory.mktemp("weft-home")
    for name in ("input", "output", "temp", "user"):
        (base / name).mkdir()
    return base


@contextmanager
def configured_paths(models: Path, base: Path) -> Iterator[Any]:
    """``nodes.paths`` pointed at ``models`` while the block runs, then put back as it was."""
    import nodes.paths as paths_module

    with paths_module.using(paths_module.Paths.at(base, models_dir=models, create=False)) as paths:
        yield paths


@pytest.fixture(scope="session")
def use_tiny_paths(tiny_models: Path, tiny_home: Path) -> Any:
    """A context manager factory for wider-scoped fixtures: ``with use_tiny_paths(): ...``."""
    return lambda: configured_paths(tiny_models, tiny_home)


@pytest.fixture
def tiny_paths(tiny_models: Path, tiny_home: Path) -> Iterator[Any]:
    """``nodes.paths`` configured with the tiny models as its models root, for one test.

    Per test (not per session) because other tests configure the process-wide paths too.
    """
    with configured_paths(tiny_models, tiny_home) as paths:
        yield paths


@pytest.fixture
def manager():
    """A fresh process-wide model manager (the previous one is freed)."""
    from nodes.diffusion.model_manager import reset_manager

    yield reset_manager(collect=False)  # tiny models: the collector pass (~0.3 s) is not worth it here


@pytest.fixture(scope="module")
def server(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real server on a free port, its models/ being the tiny models; one per test module."""
    from tests.support.server import start_server

    base = tmp_path_factory.mktemp("http-home")
    (base / "models").symlink_to(tiny_models, target_is_directory=True)
    live = start_server(base)
    yield live
    live.stop()
