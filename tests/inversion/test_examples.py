"""The inversion example workflows: each API-format prompt validates against the built-in nodes
(with its picture uploaded), is what ``examples/inversion_examples.py`` writes, and its UI-format
twin, read by the canvas's own code (``web/js/serialize.js`` under Node.js), is the same prompt."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import validate_prompt
from nodes.registry import builtin_registry
from tests.support.canvas_loader import canvas_prompt, needs_node, same_prompt

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NAMES = ["edit_image_shapes", "edict_edit_shapes", "ddpm_edit_friendly_shapes"]


@pytest.fixture(scope="module")
def registry() -> Any:
    return builtin_registry()


@pytest.fixture(scope="module")
def generator() -> Any:
    spec = importlib.util.spec_from_file_location("inversion_examples", EXAMPLES / "inversion_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def uploaded(tmp_path: Path) -> Iterator[Path]:
    """A Weft home whose input/ holds the example picture, as after uploading it."""
    import nodes.paths as paths_module

    with paths_module.using(paths_module.Paths.at(tmp_path)):
        shutil.copy(EXAMPLES / "shapes_red_circle.png", tmp_path / "input" / "shapes_red_circle.png")
        yield tmp_path


def _api(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.api.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_the_api_prompt_validates_and_is_what_the_generator_writes(
    registry: Any, generator: Any, uploaded: Path, name: str
) -> None:
    prompt = _api(name)
    result = validate_prompt(prompt, registry, None)
    assert result.ok, result.node_errors
    built = generator.EXAMPLES[name]()
    api_prompt, ui_workflow = _helpers()
    assert prompt == api_prompt(built)
    assert json.loads((EXAMPLES / f"{name}.json").read_text()) == ui_workflow(built, registry)


def test_the_picture_is_the_datasets_drawing_of_the_source_caption(generator: Any, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from weft_tools.shapes import judge as J

    generator.write_picture(tmp_path / "again.png")
    again = np.asarray(Image.open(tmp_path / "again.png").convert("RGB"))
    shipped = np.asarray(Image.open(EXAMPLES / "shapes_red_circle.png").convert("RGB"))
    assert np.array_equal(again, shipped)
    assert all(J.score(generator.SOURCE, shipped).values())


def _helpers() -> tuple[Any, Any]:
    spec = importlib.util.spec_from_file_location("guidance_examples", EXAMPLES / "guidance_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.api_prompt, module.ui_workflow


@needs_node
@pytest.mark.parametrize("name", NAMES)
def test_the_canvas_opens_the_ui_workflow_as_the_same_prompt(
    registry: Any, uploaded: Path, name: str, tmp_path: Path
) -> None:
    prompt = _api(name)
    loaded = canvas_prompt(
        registry, EXAMPLES / f"{name}.json", {node["class_type"] for node in prompt.values()}, tmp_path
    )
    assert loaded["missing"] == []
    assert same_prompt(loaded["prompt"], prompt)
