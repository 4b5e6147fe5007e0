"""The inversion example workflows: each API-format prompt validates against the built-in nodes
(with its picture uploaded), is what ``examples/inversion_examples.py`` writes, and its UI-format
twin, read by the canvas's own code (``web/js/serialize.js`` under Node.js), is the same prompt."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import validate_prompt
from nodes.registry import builtin_registry

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

    previous = paths_module._paths
    paths_module.configure(tmp_path)
    shutil.copy(EXAMPLES / "shapes_red_circle.png", tmp_path / "input" / "shapes_red_circle.png")
    try:
        yield tmp_path
    finally:
        paths_module._paths = previous


def _api(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.api.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_the_api_prompt_validates_and_is_what_the_generator_writes(registry: Any, generator: Any, uploaded: Path,
                                                                    name: str) -> None:
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


_LOADER = """
import { readFileSync } from "node:fs";
import { normalizeDef } from "%(state)s";
import { fromAnyDocument, toApiPrompt } from "%(serialize)s";
const info = JSON.parse(readFileSync(process.argv[2], "utf8"));
const defs = Object.fromEntries(Object.entries(info).map(([name, d]) => [name, normalizeDef(name, d)]));
const graph = fromAnyDocument(JSON.parse(readFileSync(process.argv[3], "utf8")), defs);
process.stdout.write(JSON.stringify({missing: graph.extra.missing_types || [], prompt: toApiPrompt(graph, defs)}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
@pytest.mark.parametrize("name", NAMES)
def test_the_canvas_opens_the_ui_workflow_as_the_same_prompt(registry: Any, uploaded: Path, name: str,
                                                             tmp_path: Path) -> None:
    from server.object_info import describe, python_module_of

    prompt = _api(name)
    info = {cls: describe(registry[cls].schema, python_module_of(registry[cls].schema))
            for cls in {node["class_type"] for node in prompt.values()}}
    (tmp_path / "info.json").write_text(json.dumps(info))
    script = tmp_path / "load.mjs"
    script.write_text(_LOADER % {"state": (ROOT / "web/js/state.js").as_uri(),
                                 "serialize": (ROOT / "web/js/serialize.js").as_uri()})
    done = subprocess.run(["node", "--experimental-default-type=module", str(script), str(tmp_path / "info.json"),
                           str(EXAMPLES / f"{name}.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert loaded["missing"] == []
    expected = {key: {"class_type": node["class_type"], "inputs": node["inputs"]} for key, node in prompt.items()}
    got = {key: {"class_type": node["class_type"], "inputs": node["inputs"]} for key, node in loaded["prompt"].items()}
    assert got == expected
