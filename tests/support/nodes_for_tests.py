"""Cheap nodes that exist only for tests: slow, failing, lazy, list, expanding, async...

They live here, not in the product catalogue, and are registered by the fixtures.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from engine import ExecutionBlocker
from nodes.api import Boolean, Float, Input, Int, Node, Output, Result, String
from nodes.registry import NodeRegistry, builtin_registry

#: every run() call of the counting nodes appends (class, value) here
CALLS: list[tuple[str, Any]] = []
_lock = threading.Lock()


def record(name: str, value: Any) -> None:
    with _lock:
        CALLS.append((name, value))


class TestSlow(Node):
    """Steps through a loop with progress and interruption points, like a sampler."""

    category = "testing"
    inputs = (Int("steps", 10, min=1, max=10000), Float("step_seconds", 0.01, min=0, max=10), String("value", "slow"))
    outputs = (Output("STRING"),)

    def run(self, steps: int, step_seconds: float, value: str) -> str:
        for step in range(steps):
            time.sleep(step_seconds)
            self.ctx.progress(step + 1, steps)
        return value


class TestFail(Node):
    category = "testing"
    inputs = (String("message", "boom"), Input("anything", "*", optional=True))
    outputs = (Output("STRING"),)

    def run(self, message: str, anything: Any = None) -> str:
        raise ValueError(f"TestFail says {message}")


class TestCount(Node):
    """Returns its input and records that it ran."""

    category = "testing"
    inputs = (String("value", "x"),)
    outputs = (Output("STRING"),)

    def run(self, value: str) -> str:
        record("TestCount", value)
        return value


class TestLazySwitch(Node):
    """Evaluates only the branch it picks."""

    category = "testing"
    inputs = (Boolean("pick_a", True), Input("a", "*", lazy=True), Input("b", "*", lazy=True))
    outputs = (Output("*", "value"),)

    def check_lazy(self, pick_a: bool, a: Any = None, b: Any = None) -> list[str]:
        return ["a"] if pick_a else ["b"]

    def run(self, pick_a: bool, a: Any = None, b: Any = None) -> Any:
        return a if pick_a else b


class TestMakeList(Node):
    category = "testing"
    inputs = (String("prefix", "item"), Int("count", 3, min=0, max=1000))
    outputs = (Output("STRING", is_list=True),)

    def run(self, prefix: str, count: int) -> tuple[list[str]]:
        return ([f"{prefix}{i}" for i in range(count)],)


class TestJoinList(Node):
    """Receives whole lists (input_is_list) and joins them."""

    category = "testing"
    input_is_list = True
    inputs = (Input("values", "STRING"), String("separator", ","))
    outputs = (Output("STRING"),)

    def run(self, values: list[str], separator: list[str]) -> str:
        return separator[0].join(values)


class TestRepeat(Node):
    """Expands into a chain of StringConcatenate nodes: a loop unrolled as a sub-graph."""

    category = "testing"
    inputs = (String("value", "ab"), Int("times", 3, min=1, max=100))
    outputs = (Output("STRING"),)

    def run(self, value: str, times: int) -> Result:
        graph: dict[str, Any] = {"n0": {"class_type": "PrimitiveString", "inputs": {"value": value}}}
        previous = ["n0", 0]
        for i in range(1, times):
            graph[f"n{i}"] = {
                "class_type": "StringConcatenate",
                "inputs": {"string_a": previous, "string_b": value, "delimiter": ""},
            }
            previous = [f"n{i}", 0]
        return Result(previous, expand=graph)


class TestAsyncSleep(Node):
    """An async node: records when it started and ended so tests can see overlap."""

    category = "testing"
    inputs = (Float("seconds", 0.2, min=0, max=10), String("tag", "t"))
    outputs = (Output("FLOAT", "started"), Output("FLOAT", "ended"))

    async def run(self, seconds: float, tag: str) -> tuple[float, float]:
        started = time.monotonic()
        await asyncio.sleep(seconds)
        return started, time.monotonic()


class TestGate(Node):
    """Passes its value on, or blocks everything downstream."""

    category = "testing"
    inputs = (Input("value", "*"), Boolean("open", True))
    outputs = (Output("*", "value"),)

    def run(self, value: Any, open: bool) -> Any:
        return value if open else ExecutionBlocker(None)


class TestPreviewFrame(Node):
    """Sends one binary preview frame (a tiny JPEG) and returns."""

    category = "testing"
    inputs = (String("value", "p"),)
    outputs = (Output("STRING"),)

    def run(self, value: str) -> str:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (255, 0, 0)).save(buffer, format="JPEG")
        self.ctx.preview(buffer.getvalue(), "JPEG")
        return value


class TestReadFile(Node):
    """Reads a file; its fingerprint (mtime and size) invalidates the cache when it changes."""

    category = "testing"
    inputs = (String("path", ""),)
    outputs = (Output("STRING"),)

    @classmethod
    def fingerprint(cls, path: str) -> Any:
        stat = Path(path).stat()
        return (stat.st_mtime_ns, stat.st_size)

    def run(self, path: str) -> str:
        record("TestReadFile", path)
        return Path(path).read_text()


class TestRange(Node):
    category = "testing"
    inputs = (Int("value", 5, min=0, max=10),)
    outputs = (Output("INT"),)

    @classmethod
    def validate(cls, value: int) -> bool | str:
        return True if value != 7 else "7 is not allowed here"

    def run(self, value: int) -> int:
        return value


TEST_NODES = [
    TestSlow,
    TestFail,
    TestCount,
    TestLazySwitch,
    TestMakeList,
    TestJoinList,
    TestRepeat,
    TestAsyncSleep,
    TestGate,
    TestPreviewFrame,
    TestReadFile,
    TestRange,
]


def make_registry() -> NodeRegistry:
    """The built-in catalogue plus the test nodes."""
    registry = builtin_registry()
    registry.register_all(TEST_NODES, pack="tests")
    return registry
