"""What the console says about a prompt that failed: which node, which input, what went wrong.

A client gets the same facts as JSON (``node_errors``, ``execution_error``), but whoever runs
the server watches its console, as ComfyUI's users do: a refused prompt prints each node and
input with its message, a failed run prints the node, its inputs, the message and the
traceback. The server and ``main.py run`` share these lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: longest rendering of one input value in the console
MAX_VALUE_CHARS = 80


def validation_lines(error: Mapping[str, Any] | None, node_errors: Mapping[str, Any]) -> list[str]:
    """ComfyUI's shape: the prompt-level error, then ``* <class> <id>:`` and ``  - <message>: <details>``
    for each problem of each node."""
    lines: list[str] = []
    if error:
        message = error.get("message", "invalid prompt")
        details = error.get("details")
        lines.append(f"invalid prompt: {message}" + (f": {details}" if details else ""))
    for node_id, entry in node_errors.items():
        lines.append(f"* {entry.get('class_type', '?')} {node_id}:")
        for problem in entry.get("errors", []):
            text = problem.get("message", "")
            details = problem.get("details")
            input_name = (problem.get("extra_info") or {}).get("input_name")
            if input_name and input_name not in f"{text} {details}":
                text = f"input '{input_name}': {text}"
            lines.append(f"  - {text}" + (f": {details}" if details else ""))
    return lines


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    if isinstance(value, list) and len(value) == 1:  # the executor reports each input as a list
        text = value[0] if isinstance(value[0], str) else repr(value[0])
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def execution_error_lines(payload: Mapping[str, Any], *, traceback: bool = True) -> list[str]:
    """A failed run: ``!!! Exception during processing !!!`` with node, class and message (as
    ComfyUI prints it, plus the node), the node's inputs, then the traceback."""
    node = payload.get("node_id")
    where = f"node {node} ({payload.get('node_type')})" if node is not None else "the run"
    lines = [f"!!! Exception during processing !!! {where}: {payload.get('exception_message', '').strip()}"]
    inputs = payload.get("current_inputs") or {}
    if inputs:
        lines.append("  inputs: " + ", ".join(f"{name}={_short(value)}" for name, value in inputs.items()))
    if traceback and payload.get("traceback"):
        lines.append("".join(payload["traceback"]).rstrip())
    return lines


class RunProgress:
    """Progress of a headless run (``main.py run``) on ``stream`` (stderr).

    On a terminal: one line per node, and for nodes that report steps (samplers) a bar redrawn
    in place, ``KSampler 3 [#########...........] 9/20``. Elsewhere (a log file, a pipe): only
    the line per node, so logs stay short and free of carriage returns.
    """

    WIDTH = 30

    def __init__(self, stream: Any, class_of: Mapping[str, str], *, tty: bool | None = None) -> None:
        self.stream = stream
        self.class_of = class_of
        isatty = getattr(stream, "isatty", None)
        self.tty = tty if tty is not None else bool(isatty and isatty())
        self._bar_open = False

    def _label(self, node: str) -> str:
        return f"{self.class_of.get(node, '?')} {node}"

    def _end_bar(self) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False

    def __call__(self, event: str, payload: Mapping[str, Any]) -> None:
        if event == "executing":
            self._end_bar()
            node = payload.get("node")
            if node is not None:
                self.stream.write(f"running node {node} ({self.class_of.get(str(node), '?')})\n")
                self.stream.flush()
        elif event == "progress" and self.tty:
            value, maximum = float(payload.get("value", 0)), float(payload.get("max", 0) or 1)
            filled = int(self.WIDTH * min(max(value / maximum, 0.0), 1.0))
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stream.write(f"\r  {self._label(str(payload.get('node')))} [{bar}] {value:g}/{maximum:g}")
            self.stream.flush()
            self._bar_open = True
        elif event in ("execution_error", "execution_interrupted", "execution_success"):
            self._end_bar()

    def close(self) -> None:
        self._end_bar()
        self.stream.flush()
