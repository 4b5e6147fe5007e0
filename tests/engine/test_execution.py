"""The engine alone, as a script would use it: laziness, lists, expansion, async, blockers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import Executor, InterruptFlag, OutputCache
from tests.engine import tiny_nodes
from tests.engine.tiny_nodes import make_registry

REGISTRY = make_registry()


def run(prompt: dict[str, Any], executor: Executor | None = None, **kwargs: Any):
    return tiny_nodes.run(REGISTRY, prompt, executor, **kwargs)


def test_lazy_input_evaluates_only_the_branch_that_is_needed(calls: list) -> None:
    prompt = {
        "a": {"class_type": "Count", "inputs": {"value": "left"}},
        "b": {"class_type": "Count", "inputs": {"value": "right"}},
        "s": {"class_type": "LazySwitch", "inputs": {"pick_a": False, "a": ["a", 0], "b": ["b", 0]}},
        "out": {"class_type": "Show", "inputs": {"value": ["s", 0]}},
    }
    result, _ = run(prompt)
    assert result.outputs["out"] == {"shown": ["right"]}
    assert calls == [("Count", "right")]
    assert "a" not in result.executed


def test_lists_are_mapped_over_nodes_and_gathered_by_list_inputs() -> None:
    prompt = {
        "l": {"class_type": "MakeList", "inputs": {"prefix": "n", "count": 3}},
        "c": {"class_type": "Concat", "inputs": {"a": ["l", 0], "b": "!"}},
        "j": {"class_type": "JoinList", "inputs": {"values": ["c", 0], "separator": "|"}},
        "out": {"class_type": "Show", "inputs": {"value": ["j", 0]}},
        "each": {"class_type": "Show", "inputs": {"value": ["c", 0]}},
    }
    result, _ = run(prompt)
    assert result.outputs["out"] == {"shown": ["n0!|n1!|n2!"]}
    assert result.outputs["each"] == {"shown": ["n0!", "n1!", "n2!"]}


def test_empty_list_means_the_mapped_node_does_not_run() -> None:
    prompt = {
        "l": {"class_type": "MakeList", "inputs": {"prefix": "n", "count": 0}},
        "c": {"class_type": "Concat", "inputs": {"a": ["l", 0], "b": "!"}},
        "out": {"class_type": "Show", "inputs": {"value": ["c", 0]}},
    }
    result, _ = run(prompt)
    assert result.status_str == "success" and result.outputs == {}


def test_node_expansion_runs_the_returned_subgraph_in_place() -> None:
    prompt = {
        "r": {"class_type": "Repeat", "inputs": {"value": "ab", "times": 4}},
        "out": {"class_type": "Show", "inputs": {"value": ["r", 0]}},
    }
    executor = Executor(REGISTRY)
    result, events = run(prompt, executor)
    assert result.outputs["out"] == {"shown": ["abababab"]}
    expanded = [d for e, d in events if e == "executing" and d.get("node", "") and d["node"].startswith("r.")]
    assert len(expanded) == 4 and all(d["display_node"] == "r" for d in expanded)
    again, _ = run(prompt, executor)
    assert again.executed == [] and again.outputs["out"] == {"shown": ["abababab"]}


def test_async_nodes_run_concurrently() -> None:
    prompt = {
        "a": {"class_type": "Sleep", "inputs": {"seconds": 0.3}},
        "b": {"class_type": "Sleep", "inputs": {"seconds": 0.3}},
        "pa": {"class_type": "Show", "inputs": {"value": ["a", 0]}},
        "pa2": {"class_type": "Show", "inputs": {"value": ["a", 1]}},
        "pb": {"class_type": "Show", "inputs": {"value": ["b", 0]}},
        "pb2": {"class_type": "Show", "inputs": {"value": ["b", 1]}},
    }
    result, _ = run(prompt, Executor(REGISTRY, OutputCache(enabled=False)))
    a_start, a_end = result.outputs["pa"]["shown"][0], result.outputs["pa2"]["shown"][0]
    b_start, b_end = result.outputs["pb"]["shown"][0], result.outputs["pb2"]["shown"][0]
    assert a_start < b_end and b_start < a_end  # the two sleeps overlapped


def test_execution_blocker_stops_dependents_without_failing() -> None:
    prompt = {
        "v": {"class_type": "String", "inputs": {"value": "x"}},
        "g": {"class_type": "Gate", "inputs": {"value": ["v", 0], "open": False}},
        "len": {"class_type": "Length", "inputs": {"value": ["g", 0]}},
        "blocked": {"class_type": "Show", "inputs": {"value": ["len", 0]}},
        "free": {"class_type": "Show", "inputs": {"value": ["v", 0]}},
    }
    result, _ = run(prompt)
    assert result.status_str == "success"
    assert "blocked" not in result.outputs and result.outputs["free"] == {"shown": ["x"]}
    assert "len" not in result.executed


def test_fingerprint_invalidates_the_cache_when_outside_state_changes(tmp_path: Path, calls: list) -> None:
    source = tmp_path / "data.txt"
    source.write_text("one")
    prompt = {
        "r": {"class_type": "ReadFile", "inputs": {"path": str(source)}},
        "out": {"class_type": "Show", "inputs": {"value": ["r", 0]}},
    }
    executor = Executor(REGISTRY)
    assert run(prompt, executor)[0].outputs["out"] == {"shown": ["one"]}
    assert run(prompt, executor)[0].executed == []
    source.write_text("two!")
    result, _ = run(prompt, executor)
    assert result.outputs["out"] == {"shown": ["two!"]} and result.executed == ["r", "out"]
    assert len(calls) == 2


def test_interrupt_flag_set_before_run_stops_at_first_node() -> None:
    flag = InterruptFlag()
    flag.set()
    result, events = run(
        {
            "1": {"class_type": "String", "inputs": {"value": "x"}},
            "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        },
        interrupt=flag,
    )
    assert result.interrupted and result.executed == []
    assert [e for e, _ in events][-2:] == ["execution_interrupted", "executing"]


def test_cache_none_reexecutes_everything() -> None:
    executor = Executor(REGISTRY, OutputCache(enabled=False))
    prompt = {
        "1": {"class_type": "String", "inputs": {"value": "x"}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    run(prompt, executor)
    assert run(prompt, executor)[0].executed == ["1", "2"]


def test_each_node_runs_once_even_when_shared(calls: list) -> None:
    prompt = {
        "c": {"class_type": "Count", "inputs": {"value": "shared"}},
        "a": {"class_type": "Concat", "inputs": {"a": ["c", 0], "b": "1"}},
        "b": {"class_type": "Concat", "inputs": {"a": ["c", 0], "b": "2"}},
        "pa": {"class_type": "Show", "inputs": {"value": ["a", 0]}},
        "pb": {"class_type": "Show", "inputs": {"value": ["b", 0]}},
    }
    result, _ = run(prompt)
    assert calls == [("Count", "shared")]
    assert result.outputs["pa"] == {"shown": ["shared1"]} and result.outputs["pb"] == {"shown": ["shared2"]}


def test_unrequested_branches_do_not_run(calls: list) -> None:
    prompt = {
        "c": {"class_type": "Count", "inputs": {"value": "orphan"}},
        "x": {"class_type": "String", "inputs": {"value": "x"}},
        "out": {"class_type": "Show", "inputs": {"value": ["x", 0]}},
    }
    result, _ = run(prompt)
    assert calls == [] and result.executed == ["x", "out"]


def test_deep_chains_validate_and_run_without_recursion_limits() -> None:
    depth = 3000  # deeper than Python's default recursion limit
    prompt: dict[str, Any] = {"0": {"class_type": "String", "inputs": {"value": "a"}}}
    for i in range(1, depth):
        prompt[str(i)] = {"class_type": "Concat", "inputs": {"a": [str(i - 1), 0], "b": ""}}
    prompt["out"] = {"class_type": "Show", "inputs": {"value": [str(depth - 1), 0]}}
    executor = Executor(REGISTRY)
    result, _ = run(prompt, executor)
    assert result.outputs["out"] == {"shown": ["a"]} and len(result.executed) == depth + 1
    prompt["0"]["inputs"]["value"] = "b"  # the head changed: the whole chain re-runs
    result, _ = run(prompt, executor)
    assert len(result.executed) == depth + 1 and result.outputs["out"] == {"shown": ["b"]}


def test_error_in_node_fails_run_with_payload() -> None:
    result, events = run(
        {
            "f": {"class_type": "Fail", "inputs": {"message": "oops"}},
            "out": {"class_type": "Show", "inputs": {"value": ["f", 0]}},
        }
    )
    assert result.status_str == "error" and result.error["node_id"] == "f"
    assert result.error["exception_message"] == "Fail says oops"
    assert ("execution_error", result.error) in events
