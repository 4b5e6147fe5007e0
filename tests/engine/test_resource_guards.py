"""Issue 13's guards inside the engine: memory estimates at validation, bounded expansion,
malformed prompts refused with their node and input named. (The built-in nodes' own estimates
and size checks are tested in tests/nodes/test_resource_estimates.py.)"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from engine import Executor, normalise_prompt, validate_prompt
from engine.prompt import MAX_INPUT_DEPTH
from engine.resources import Estimate, TensorInfo, estimate_prompt
from engine.schema import NodeResult
from tests.engine.tiny_nodes import Definition, inp, make_registry, out

GIB = 1 << 30


class _Def:
    """A bare engine node definition with an estimate, as any contract may provide one."""

    def __init__(self, estimate: Any) -> None:
        self.estimate = estimate


def test_estimates_flow_along_links_and_name_the_input() -> None:
    def make(inputs: Mapping[str, Any]) -> Estimate:
        info = TensorInfo((inputs["n"], 1024, 1024))
        return Estimate(info.nbytes, (info,), "n", "a block")

    def double(inputs: Mapping[str, Any]) -> Estimate | None:
        info = inputs["x"]
        if not isinstance(info, TensorInfo):
            return None
        out = TensorInfo((info.shape[0] * 2, *info.shape[1:]))
        return Estimate(out.nbytes, (out,), "x")

    def broken(inputs: Mapping[str, Any]) -> Estimate:
        raise RuntimeError("a bug in an estimator")

    registry = {"Make": _Def(make), "Double": _Def(double), "Broken": _Def(broken), "Plain": object()}
    prompt = {
        "a": {"class_type": "Make", "inputs": {"n": 100}},  # 400 MiB
        "b": {"class_type": "Double", "inputs": {"x": ["a", 0]}},  # 800 MiB
        "c": {"class_type": "Double", "inputs": {"x": ["b", 0]}},  # 1.6 GiB
        "d": {"class_type": "Broken", "inputs": {"x": ["c", 0]}},
        "e": {"class_type": "Plain", "inputs": {"x": ["c", 0]}},
        "f": {"class_type": "Double", "inputs": {"x": ["e", 0]}},  # unknown: not checked
    }
    order = list(prompt)
    errors = estimate_prompt(prompt, order, registry, GIB)
    assert list(errors) == ["c"]
    assert errors["c"]["type"] == "memory_budget_exceeded"
    assert errors["c"]["extra_info"] == {"input_name": "x", "estimated_bytes": 1600 * (1 << 20), "budget_bytes": GIB}
    assert "Double (node c)" in errors["c"]["details"] and "--max-node-memory" in errors["c"]["details"]
    assert estimate_prompt(prompt, order, registry, None) == {}
    assert estimate_prompt(prompt, order, registry, 0) == {}


def zeros(inputs: Mapping[str, Any]) -> Estimate:
    info = TensorInfo((inputs["count"], 1024, 1024))  # 4 MiB per count
    return Estimate(info.nbytes, (info,), "count", "a block of zeros")


def test_validation_refuses_nodes_over_the_budget_with_node_and_input() -> None:
    registry = make_registry(
        Definition(
            "Zeros", [inp("count", "INT", min=1, max=10_000)], [out("BLOCK")], lambda count: None, estimate=zeros
        )
    )
    prompt = normalise_prompt(
        {
            "1": {"class_type": "Zeros", "inputs": {"count": 256}},
            "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        }
    )
    checked = validate_prompt(prompt, registry, memory_budget=GIB // 2)
    assert not checked.ok and checked.outputs == ["2"] and list(checked.node_errors) == ["1"]
    assert checked.node_errors["1"]["dependent_outputs"] == ["2"]
    error = checked.node_errors["1"]["errors"][0]
    assert error["type"] == "memory_budget_exceeded" and error["extra_info"]["input_name"] == "count"
    assert "a block of zeros" in error["details"]
    assert checked.error["type"] == "prompt_outputs_failed_validation"
    # the same prompt passes with a larger budget or none
    assert validate_prompt(prompt, registry, memory_budget=4 * GIB).ok
    assert validate_prompt(prompt, registry).ok


def test_malformed_prompts_name_the_node_and_input() -> None:
    with pytest.raises(ValueError, match="node '1': 'class_type' must be a string"):
        normalise_prompt({"1": {"class_type": ["Show"], "inputs": {}}})
    deep: Any = 1
    for _ in range(MAX_INPUT_DEPTH + 5):
        deep = {"k": deep}
    with pytest.raises(ValueError, match="node '7': input 'value' is nested more than"):
        normalise_prompt({"7": {"class_type": "String", "inputs": {"value": deep}}})
    shallow: Any = 1
    for _ in range(MAX_INPUT_DEPTH - 1):
        shallow = [shallow, 0.5]
    assert normalise_prompt({"7": {"class_type": "Show", "inputs": {"source": shallow}}})


def expand_forever(width: int) -> NodeResult:
    """Expands into ``width`` more copies of itself: an expansion with no end."""
    graph = {f"n{i}": {"class_type": "ExpandForever", "inputs": {"width": width}} for i in range(width)}
    return NodeResult((["n0", 0],), expand=graph)


@pytest.mark.parametrize("width, limit_name", [(1, "nested"), (40, "nodes")])
def test_node_expansion_is_bounded_in_depth_and_size(width: int, limit_name: str) -> None:
    registry = make_registry(
        Definition("ExpandForever", [inp("width", "INT", min=1, max=1000)], [out("INT")], expand_forever)
    )
    executor = Executor(registry)
    executor.max_expansion_depth = 20
    executor.max_run_nodes = 500
    prompt = {
        "1": {"class_type": "ExpandForever", "inputs": {"width": width}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    checked = validate_prompt(normalise_prompt(prompt), registry)
    assert checked.ok, checked.node_errors
    started = time.monotonic()
    result = executor.execute_sync("p", checked.prompt, checked.outputs, order=checked.order)
    assert time.monotonic() - started < 30
    assert result.status_str == "error" and result.error["node_id"].startswith("1")
    assert "ExpansionLimitError" in result.error["exception_type"]
    assert limit_name in result.error["exception_message"]
