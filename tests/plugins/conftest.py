"""Shared fixtures: fresh user folders and a registry with the fixture packs loaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nodes import paths
from nodes.plugins import PluginConfig, PluginReport, load_plugins
from nodes.registry import NodeRegistry, builtin_registry

PACKS = Path(__file__).parent / "packs"


@pytest.fixture
def weft_paths(tmp_path: Path) -> Iterator[paths.Paths]:
    """Weft's input/output/models folders in a temporary directory, for this test alone."""
    with paths.using(paths.Paths.at(tmp_path / "home")) as configured:
        yield configured


@pytest.fixture
def loaded(weft_paths: paths.Paths) -> tuple[NodeRegistry, PluginReport]:
    registry = builtin_registry()
    report = load_plugins(registry, PluginConfig(folders=[PACKS]))
    return registry, report
