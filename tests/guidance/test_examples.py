"""The guidance example workflows: each API-format prompt validates against the built-in nodes,
is what ``examples/guidance_examples.py`` writes, and the UI-format twin, read by the canvas's
own code (``web/js/serialize.js`` under Node.js), turns back into the same prompt."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from engine import validate_prompt
from nodes.registry import builtin_registry

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
def test_the_canvas_opens_the_ui_workflow_as_the_same_prompt(registry: Any, name: str, tmp_path: Path) -> None:
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
