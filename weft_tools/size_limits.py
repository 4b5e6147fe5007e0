"""Hold the Python code to the project's size limits: no function over 60 lines, no module over 600.

Run by ``.ci/run`` (``python -m weft_tools.size_limits``); tests are exempt. Long functions and
modules are where responsibilities pile up unnoticed, so the limit is checked, not hoped for.
The canvas's JavaScript has its own limits in ``eslint.config.js``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 600
#: not the project's own code, or not code held to the limits
SKIP = ("tests", ".venv", "node_modules", "build", "dist", "training", "user", "output", "input", "temp")


def violations(root: Path = ROOT) -> list[str]:
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] in SKIP or any(part.startswith(".") for part in relative.parts):
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            found.append(f"{relative}: {lines} lines (module limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(source, filename=str(relative))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(
                        f"{relative}:{node.lineno} {node.name}: {length} lines (function limit {MAX_FUNCTION_LINES})"
                    )
    return found


def main() -> int:
    found = violations()
    for line in found:
        print(line)
    print(f"size limits: {len(found)} violation(s)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
