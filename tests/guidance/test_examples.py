"""The guidance example workflows: each API-format prompt validates against the built-in nodes,
is what ``examples/guidance_examples.py`` writes, and the UI-format twin, read by the canvas's
own code (``web/js/serialize.js`` under Node.js), turns back into the same prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine import validate_prompt
from nodes.registry import builtin_registry
from tests.support.canvas_loader import canvas_prompt, needs_node, same_prompt

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NAMES = ["apg_shapes", "adaptive_guidance_shapes", "guidance_stack_shapes"]


@pytest.fixture(scope="module")
def registry() -> Any:
    return builtin_registry()


def _api(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.api.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_the_api_prompt_validates_and_is_what_the_generator_writes(registry: Any, name: str) -> None:
    import importlib.util

    prompt = _api(name)
    result = validate_prompt(prompt, registry, None)
    assert result.ok, result.node_errors
    spec = importlib.util.spec_from_file_location("guidance_examples", EXAMPLES / "guidance_examples.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    built = generator.EXAMPLES[name]()
    assert prompt == generator.api_prompt(built)
    assert json.loads((EXAMPLES / f"{name}.json").read_text()) == generator.ui_workflow(built, registry)


@needs_node
@pytest.mark.parametrize("name", NAMES)
def test_the_canvas_opens_the_ui_workflow_as_the_same_prompt(registry: Any, name: str, tmp_path: Path) -> None:
    prompt = _api(name)
    loaded = canvas_prompt(
        registry, EXAMPLES / f"{name}.json", {node["class_type"] for node in prompt.values()}, tmp_path
    )
    assert loaded["missing"] == []
    assert same_prompt(loaded["prompt"], prompt)
