"""Minimal node definitions written against the engine's protocol (``engine.schema``).

The engine tests use these instead of ``nodes/``, so the engine is tested alone, as a script
would use it, and a change to a built-in node cannot break (or hide a break in) the engine's
tests. Each definition is a plain function plus the optional hooks a contract may provide.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine import (
    ExecutionBlocker,
    Executor,
    InputSpec,
    NodeResult,
    NodeSchema,
    OutputSpec,
    RunResult,
    current_context,
    normalise_prompt,
    validate_prompt,
)

#: every call of the recording nodes (``Value``, ``Count``, ``ReadFile``) appends (class, value) here
CALLS: list[tuple[str, Any]] = []


class Definition:
    """A node definition for tests: a function, its inputs and outputs, optional hooks."""

    def __init__(
        self,
        name: str,
        inputs: list[InputSpec],
        outputs: list[OutputSpec],
        function: Callable[..., Any],
        *,
        output_node: bool = False,
        input_is_list: bool = False,
        validate: Callable[[Mapping[str, Any], Mapping[str, str]], Any] | None = None,
        lazy: Callable[..., Any] | None = None,
        skip_links: bool = False,
        skip_defaults: frozenset[str] = frozenset(),
        is_async: bool = False,
        fingerprint: Callable[..., Any] | None = None,
        estimate: Callable[[Mapping[str, Any]], Any] | None = None,
    ) -> None:
        self.schema = NodeSchema(
            name,
            name,
            "test",
            "",
            tuple(inputs),
            tuple(outputs),
            output_node=output_node,
            input_is_list=input_is_list,
            is_async=is_async,
        )
        self.function, self._validate, self.lazy, self.skip_links = function, validate, lazy, skip_links
        self.skip_defaults, self._fingerprint = skip_defaults, fingerprint
        if estimate is not None:  # the hook is optional: the engine looks for the attribute
            self.estimate = estimate

    def create(self) -> Instance:
        return Instance(self)

    def fingerprint(self, inputs: Mapping[str, Any]) -> Any:
        return None if self._fingerprint is None else self._fingerprint(**inputs)

    def validate(self, inputs: Mapping[str, Any], input_types: Mapping[str, str]) -> Any:
        return True if self._validate is None else self._validate(inputs, input_types)

    def skips_default_validation(self, input_name: str) -> bool:
        return input_name in self.skip_defaults

    def skips_link_type_check(self, input_name: str) -> bool:
        return self.skip_links


class Instance:
    def __init__(self, definition: Definition) -> None:
        self.definition = definition

    def check_lazy(self, inputs: Mapping[str, Any], unevaluated: frozenset[str]) -> Any:
        return self.definition.lazy(**inputs) if self.definition.lazy else ()

    def call(self, inputs: Mapping[str, Any]) -> Any:
        outcome = self.definition.function(**inputs)
        if asyncio.iscoroutine(outcome):

            async def finish() -> NodeResult:
                value = await outcome
                return value if isinstance(value, NodeResult) else NodeResult((value,))

            return finish()
        return outcome if isinstance(outcome, NodeResult) else NodeResult((outcome,))


def inp(name: str, kind: str = "INT", section: str = "required", **options: Any) -> InputSpec:
    lazy = bool(options.pop("lazy", False))
    return InputSpec(name, kind, section, options, lazy)  # type: ignore[arg-type]


def out(kind: str = "*", name: str | None = None, is_list: bool = False) -> OutputSpec:
    return OutputSpec(kind, name or kind, is_list)


def _record(name: str, value: Any) -> Any:
    CALLS.append((name, value))
    return value


def _repeat(value: str, times: int) -> NodeResult:
    """A loop unrolled as a sub-graph: ``times`` copies of ``value`` concatenated."""
    graph: dict[str, Any] = {"n0": {"class_type": "String", "inputs": {"value": value}}}
    for i in range(1, times):
        graph[f"n{i}"] = {"class_type": "Concat", "inputs": {"a": [f"n{i - 1}", 0], "b": value}}
    return NodeResult(([f"n{times - 1}", 0],), expand=graph)


async def _sleep(seconds: float) -> NodeResult:
    started = time.monotonic()
    await asyncio.sleep(seconds)
    return NodeResult((started, time.monotonic()))


def _slow(steps: int, value: Any) -> Any:
    ctx = current_context()
    assert ctx is not None
    for step in range(steps):
        ctx.progress(step + 1, steps)
    return value


def _fail(message: str, anything: Any = None) -> Any:
    raise ValueError(f"Fail says {message}")


def _read(path: str) -> str:
    _record("ReadFile", path)
    return Path(path).read_text()


def _file_state(path: str) -> tuple[int, int]:
    stat = Path(path).stat()
    return stat.st_mtime_ns, stat.st_size


BASE = [
    Definition("Value", [inp("value", "*")], [out("*", "value")], lambda value: _record("Value", value)),
    Definition("Int", [inp("value", "INT")], [out("INT")], lambda value: value),
    Definition("String", [inp("value", "STRING")], [out("STRING")], lambda value: value),
    Definition("Count", [inp("value", "STRING")], [out("STRING")], lambda value: _record("Count", value)),
    Definition("Concat", [inp("a", "STRING"), inp("b", "STRING")], [out("STRING")], lambda a, b: a + b),
    Definition("Length", [inp("value", "STRING")], [out("INT")], lambda value: len(value)),
    Definition("Show", [inp("value", "*")], [], lambda value: NodeResult(None, {"shown": [value]}), output_node=True),
    Definition(
        "LazySwitch",
        [inp("pick_a", "BOOLEAN"), inp("a", "*", lazy=True), inp("b", "*", lazy=True)],
        [out()],
        lambda pick_a, a=None, b=None: a if pick_a else b,
        lazy=lambda pick_a, a=None, b=None: ["a"] if pick_a else ["b"],
    ),
    Definition(
        "MakeList",
        [inp("prefix", "STRING"), inp("count", "INT", min=0, max=1000)],
        [out("STRING", is_list=True)],
        lambda prefix, count: NodeResult(([f"{prefix}{i}" for i in range(count)],)),
    ),
    Definition(
        "JoinList",
        [inp("values", "STRING"), inp("separator", "STRING")],
        [out("STRING")],
        lambda values, separator: separator[0].join(values),
        input_is_list=True,
    ),
    Definition("Repeat", [inp("value", "STRING"), inp("times", "INT", min=1, max=100)], [out("STRING")], _repeat),
    Definition(
        "Sleep",
        [inp("seconds", "FLOAT", min=0, max=10)],
        [out("FLOAT", "started"), out("FLOAT", "ended")],
        _sleep,
        is_async=True,
    ),
    Definition(
        "Gate",
        [inp("value", "*"), inp("open", "BOOLEAN")],
        [out()],
        lambda value, open: value if open else ExecutionBlocker(None),
    ),
    Definition("ReadFile", [inp("path", "STRING")], [out("STRING")], _read, fingerprint=_file_state),
    Definition("Fail", [inp("message", "STRING"), inp("anything", "*", "optional")], [out("STRING")], _fail),
    Definition("Slow", [inp("steps", "INT", min=1, max=10000), inp("value", "*")], [out()], _slow),
]


def make_registry(*extra: Definition) -> dict[str, Definition]:
    """The base definitions plus ``extra`` (which replace base ones of the same name)."""
    return {d.schema.name: d for d in [*BASE, *extra]}


def run(
    registry: Mapping[str, Definition], prompt: dict[str, Any], executor: Executor | None = None, **kwargs: Any
) -> tuple[RunResult, list[tuple[str, Any]]]:
    """Validate (which must pass) and execute ``prompt``; the result and every event sent."""
    executor = executor or Executor(registry)
    checked = validate_prompt(normalise_prompt(prompt), registry)
    assert checked.ok, checked.node_errors
    events: list[tuple[str, Any]] = []
    result = executor.execute_sync(
        "p", checked.prompt, checked.outputs, order=checked.order, emit=lambda e, d: events.append((e, d)), **kwargs
    )
    return result, events
