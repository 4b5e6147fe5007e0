"""A finished run and its validation leave no reference cycles behind.

The server keeps thousands of objects alive (history, cache); a run whose nodes, inputs and
outputs hang in a cycle survives until a full collection, which then walks everything the
server holds. Measured on a 2001-node prompt: ~20,000 objects per run, and full collections
taking a sixth of the run's time. These tests count what the cycle collector finds after a
run with the collector off, so any new cycle between the run's objects shows up here.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from engine import Executor
from tests.engine import tiny_nodes
from tests.engine.tiny_nodes import make_registry

REGISTRY = make_registry()


def chain(n: int) -> dict:
    prompt: dict = {"n0": {"class_type": "String", "inputs": {"value": "x"}}}
    for i in range(1, n):
        prompt[f"n{i}"] = {"class_type": "Concat", "inputs": {"a": [f"n{i - 1}", 0], "b": "y"}}
    prompt["out"] = {"class_type": "Show", "inputs": {"value": [f"n{n - 1}", 0]}}
    return prompt


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def cyclic_garbage_after(action) -> int:
    gc.collect()  # what came before
    action()
    return gc.collect()


def test_a_run_and_its_validation_leave_no_cycles(collector_off: None) -> None:
    executor = Executor(REGISTRY)
    tiny_nodes.run(REGISTRY, chain(3), executor)  # first use: anything created once per process

    found = cyclic_garbage_after(lambda: tiny_nodes.run(REGISTRY, chain(200), executor))

    assert found == 0, f"a 200-node run left {found} objects in reference cycles"


def test_a_run_from_the_cache_leaves_no_cycles(collector_off: None) -> None:
    executor = Executor(REGISTRY)
    tiny_nodes.run(REGISTRY, chain(200), executor)

    found = cyclic_garbage_after(lambda: tiny_nodes.run(REGISTRY, chain(200), executor))

    assert found == 0, f"a cached 200-node run left {found} objects in reference cycles"
