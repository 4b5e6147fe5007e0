"""Open a workflow file with the canvas's own code (``web/js/serialize.js`` under Node.js) and
return the API-format prompt the canvas would queue, for the example-workflow tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")

_LOADER = """
import { readFileSync } from "node:fs";
import { normalizeDef } from "%(state)s";
import { fromAnyDocument, toApiPrompt } from "%(serialize)s";
const info = JSON.parse(readFileSync(process.argv[2], "utf8"));
const defs = Object.fromEntries(Object.entries(info).map(([name, d]) => [name, normalizeDef(name, d)]));
const graph = fromAnyDocument(JSON.parse(readFileSync(process.argv[3], "utf8")), defs);
process.stdout.write(JSON.stringify({missing: graph.extra.missing_types || [], prompt: toApiPrompt(graph, defs)}));
"""


def canvas_prompt(registry: Any, workflow: Path, class_types: set[str], work: Path) -> dict[str, Any]:
    """``{"missing": [...], "prompt": {...}}``: what the canvas makes of ``workflow``, given the
    /object_info entries of ``class_types``."""
    from server.object_info import describe, python_module_of

    info = {cls: describe(registry[cls].schema, python_module_of(registry[cls].schema)) for cls in class_types}
    (work / "info.json").write_text(json.dumps(info))
    script = work / "load.mjs"
    script.write_text(
        _LOADER % {"state": (ROOT / "web/js/state.js").as_uri(), "serialize": (ROOT / "web/js/serialize.js").as_uri()}
    )
    done = subprocess.run(
        ["node", "--experimental-default-type=module", str(script), str(work / "info.json"), str(workflow)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def same_prompt(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal class types and inputs node by node (titles and other metadata aside)."""

    def plain(p: dict[str, Any]) -> dict[str, Any]:
        return {key: {"class_type": node["class_type"], "inputs": node["inputs"]} for key, node in p.items()}

    return plain(a) == plain(b)
