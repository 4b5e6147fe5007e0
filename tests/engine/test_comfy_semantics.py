"""The executor and validator behave as ComfyUI's do where clients and packs can tell.

Each test pins one behaviour ComfyUI's own execution suite exercises (see
``weft_tools/run_comfyui_execution_tests.py``), on minimal node definitions written
against the engine's protocol, so the engine is tested without any node pack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from engine import (
    ExecutionBlocker,
    Executor,
    NodeResult,
    OutputSpec,
    current_context,
    validate_prompt,
    validate_prompt_async,
)
from tests.engine.tiny_nodes import CALLS, Definition, inp, make_registry, run


def lazy_pick(seen: list[dict[str, Any]]) -> Definition:
    """``Pick``: a lazy ``a`` and ``b``; asks for ``a`` only when ``want_a`` is true."""

    def check(want_a: bool, a: Any, b: Any = None) -> list[str]:
        return ["a"] if want_a and a is None else []

    def pick(want_a: bool, a: Any, b: Any = None) -> Any:
        seen.append({"a": a, "b": b})
        return a if want_a else "none"

    return Definition(
        "Pick",
        [inp("want_a", "BOOLEAN"), inp("a", "*", lazy=True), inp("b", "*", "optional", lazy=True)],
        [OutputSpec("*", "out")],
        pick,
        lazy=check,
    )


def test_lazy_inputs_never_asked_for_are_passed_as_none() -> None:
    seen: list[dict[str, Any]] = []
    registry = make_registry(lazy_pick(seen))
    prompt = {
        "a": {"class_type": "Value", "inputs": {"value": "A"}},
        "b": {"class_type": "Value", "inputs": {"value": "B"}},
        "p": {"class_type": "Pick", "inputs": {"want_a": False, "a": ["a", 0], "b": ["b", 0]}},
        "s": {"class_type": "Show", "inputs": {"value": ["p", 0]}},
    }
    result, _ = run(registry, prompt)
    assert seen == [{"a": None, "b": None}]  # present as None, not missing (ComfyUI passes None)
    assert CALLS == [] and result.outputs["s"] == {"shown": ["none"]}


def test_a_requested_lazy_input_that_comes_from_the_cache_reaches_the_node() -> None:
    seen: list[dict[str, Any]] = []
    registry = make_registry(lazy_pick(seen))
    executor = Executor(registry)
    warm = {
        "a": {"class_type": "Value", "inputs": {"value": "A"}},
        "s": {"class_type": "Show", "inputs": {"value": ["a", 0]}},
    }
    run(registry, warm, executor)
    prompt = {
        "a": {"class_type": "Value", "inputs": {"value": "A"}},
        "p": {"class_type": "Pick", "inputs": {"want_a": True, "a": ["a", 0]}},
        "s": {"class_type": "Show", "inputs": {"value": ["p", 0]}},
    }
    result, _ = run(registry, prompt, executor)
    assert "a" in result.cached and "a" not in result.executed
    assert seen == [{"a": "A", "b": None}] and result.outputs["s"] == {"shown": ["A"]}


def test_async_check_lazy_is_awaited() -> None:
    async def check(want_a: bool, a: Any, b: Any) -> list[str]:
        await asyncio.sleep(0)
        return ["a"] if a is None else []

    pick = Definition(
        "APick",
        [inp("want_a", "BOOLEAN"), inp("a", "*", lazy=True), inp("b", "*", lazy=True)],
        [OutputSpec("*", "out")],
        lambda want_a, a, b: a,
        lazy=check,
    )
    registry = make_registry(pick)
    prompt = {
        "a": {"class_type": "Value", "inputs": {"value": "A"}},
        "b": {"class_type": "Value", "inputs": {"value": "B"}},
        "p": {"class_type": "APick", "inputs": {"want_a": True, "a": ["a", 0], "b": ["b", 0]}},
        "s": {"class_type": "Show", "inputs": {"value": ["p", 0]}},
    }
    result, _ = run(registry, prompt)
    assert result.outputs["s"] == {"shown": ["A"]} and CALLS == [("Value", "A")]


def test_validate_gets_the_types_of_linked_inputs() -> None:
    received: list[tuple[dict, dict]] = []

    def check(inputs: Mapping[str, Any], types: Mapping[str, str]) -> bool:
        received.append((dict(inputs), dict(types)))
        return True

    node = Definition(
        "Takes", [inp("x", "INT,FLOAT"), inp("y", "FLOAT")], [OutputSpec("*", "o")], lambda x, y: x, validate=check
    )
    registry = make_registry(node)
    prompt = {
        "i": {"class_type": "Int", "inputs": {"value": 3}},
        "t": {"class_type": "Takes", "inputs": {"x": ["i", 0], "y": 2.5}},
        "s": {"class_type": "Show", "inputs": {"value": ["t", 0]}},
    }
    assert validate_prompt(prompt, registry).ok
    assert received == [({"y": 2.5}, {"x": "INT"})]


def test_link_type_checks_are_skipped_only_for_nodes_that_judge_types_themselves() -> None:
    strict = Definition("Strict", [inp("x", "IMAGE")], [OutputSpec("*", "o")], lambda x: x)
    judges = Definition(
        "Judges",
        [inp("x", "IMAGE")],
        [OutputSpec("*", "o")],
        lambda x: x,
        validate=lambda inputs, types: True if types.get("x") == "INT" else "wanted INT",
        skip_links=True,
    )
    registry = make_registry(strict, judges)

    def prompt(kind: str) -> dict:
        return {
            "i": {"class_type": "Int", "inputs": {"value": 1}},
            "n": {"class_type": kind, "inputs": {"x": ["i", 0]}},
            "s": {"class_type": "Show", "inputs": {"value": ["n", 0]}},
        }

    refused = validate_prompt(prompt("Strict"), registry)
    assert not refused.ok and refused.node_errors["n"]["errors"][0]["type"] == "return_type_mismatch"
    assert validate_prompt(prompt("Judges"), registry).ok


def test_constants_for_non_widget_types_are_accepted_and_widgets_still_converted() -> None:
    node = Definition(
        "Flag",
        [inp("flag", "BOOL"), inp("count", "INT", min=0, max=9)],
        [OutputSpec("*", "o")],
        lambda flag, count: (flag, count),
    )
    registry = make_registry(node)
    prompt = {
        "f": {"class_type": "Flag", "inputs": {"flag": True, "count": "7"}},
        "s": {"class_type": "Show", "inputs": {"value": ["f", 0]}},
    }
    checked = validate_prompt(prompt, registry)
    assert checked.ok and checked.prompt["f"]["inputs"] == {"flag": True, "count": 7}


def test_one_invalid_output_does_not_reject_the_others() -> None:
    registry = make_registry()
    prompt = {
        "a": {"class_type": "Value", "inputs": {"value": "fine"}},
        "good": {"class_type": "Show", "inputs": {"value": ["a", 0]}},
        "bad": {"class_type": "Show", "inputs": {"value": ["gone", 0]}},
        "worse": {"class_type": "Int", "inputs": {"value": "x"}},
        "bad2": {"class_type": "Show", "inputs": {"value": ["worse", 0]}},
    }
    checked = validate_prompt(prompt, registry)
    assert checked.ok and checked.outputs == ["good"]
    assert set(checked.node_errors) == {"bad", "worse"}
    assert checked.node_errors["worse"]["dependent_outputs"] == ["bad2"]
    assert "worse" not in checked.order and "bad" not in checked.order
    result = Executor(registry).execute_sync("p", checked.prompt, checked.outputs, order=checked.order)
    assert result.outputs == {"good": {"shown": ["fine"]}}


def test_no_valid_output_or_an_unknown_class_still_rejects_the_prompt() -> None:
    registry = make_registry()
    bad = {"bad": {"class_type": "Show", "inputs": {"value": ["gone", 0]}}}
    assert validate_prompt(bad, registry).error["type"] == "prompt_outputs_failed_validation"
    unknown = {
        "a": {"class_type": "Value", "inputs": {"value": 1}},
        "s": {"class_type": "Show", "inputs": {"value": ["a", 0]}},
        "x": {"class_type": "Nope", "inputs": {}},
    }
    assert validate_prompt(unknown, registry).error["type"] == "missing_node_type"


def test_partial_execution_targets() -> None:
    registry = make_registry()
    prompt = {
        "a": {"class_type": "Value", "inputs": {"value": 1}},
        "s1": {"class_type": "Show", "inputs": {"value": ["a", 0]}},
        "s2": {"class_type": "Show", "inputs": {"value": ["a", 0]}},
    }
    assert validate_prompt(prompt, registry, None).outputs == ["s1", "s2"]
    assert validate_prompt(prompt, registry, ["s2", "missing"]).outputs == ["s2"]
    empty = validate_prompt(prompt, registry, [])
    assert not empty.ok and empty.error["type"] == "prompt_no_outputs"


def test_a_raw_link_input_receives_the_link_after_its_source_ran() -> None:
    node = Definition("Raw", [inp("flow", "*", rawLink=True)], [OutputSpec("*", "o")], lambda flow: flow)
    registry = make_registry(node)
    prompt = {
        "a": {"class_type": "Value", "inputs": {"value": 5}},
        "r": {"class_type": "Raw", "inputs": {"flow": ["a", 0]}},
        "s": {"class_type": "Show", "inputs": {"value": ["r", 0]}},
    }
    result, _ = run(registry, prompt)
    assert result.outputs["s"] == {"shown": [["a", 0]]}
    assert result.executed.index("a") < result.executed.index("r")


def test_a_blocker_in_a_list_blocks_only_that_element() -> None:
    listing = Definition(
        "List", [], [OutputSpec("*", "items", is_list=True)], lambda: NodeResult(([1, ExecutionBlocker(None), 3],))
    )
    double = Definition("Double", [inp("x", "*")], [OutputSpec("*", "o")], lambda x: x * 2)
    registry = make_registry(listing, double)
    prompt = {
        "l": {"class_type": "List", "inputs": {}},
        "d": {"class_type": "Double", "inputs": {"x": ["l", 0]}},
        "s": {"class_type": "Show", "inputs": {"value": ["d", 0]}},
    }
    result, _ = run(registry, prompt)
    assert result.outputs["s"] == {"shown": [2, 6]}


def test_a_blocker_with_a_message_is_recorded_once() -> None:
    gate = Definition("Gate", [], [OutputSpec("*", "o")], lambda: NodeResult((ExecutionBlocker("closed"),)))
    registry = make_registry(gate)
    prompt = {
        "g": {"class_type": "Gate", "inputs": {}},
        "v": {"class_type": "Value", "inputs": {"value": ["g", 0]}},
        "s": {"class_type": "Show", "inputs": {"value": ["v", 0]}},
    }
    result, _ = run(registry, prompt)
    blocked = [m for m in result.messages if m[0] == "execution_blocked"]
    assert [m[1]["node_id"] for m in blocked] == ["v"] and result.outputs == {}


def test_async_validation_is_awaited_by_both_entry_points() -> None:
    async def check(inputs: Mapping[str, Any], types: Mapping[str, str]) -> bool | str:
        await asyncio.sleep(0)
        return True if inputs["value"] < 10 else "too big"

    node = Definition("Small", [inp("value", "INT")], [OutputSpec("INT", "o")], lambda value: value, validate=check)
    registry = make_registry(node)

    def prompt(value: int) -> dict:
        return {
            "n": {"class_type": "Small", "inputs": {"value": value}},
            "s": {"class_type": "Show", "inputs": {"value": ["n", 0]}},
        }

    assert validate_prompt(prompt(3), registry).ok
    refused = validate_prompt(prompt(30), registry)
    assert refused.node_errors["n"]["errors"][0]["details"] == "too big"
    assert asyncio.run(validate_prompt_async(prompt(3), registry)).ok
    assert not asyncio.run(validate_prompt_async(prompt(30), registry)).ok


def test_expanded_ids_are_used_as_given_when_global_and_prefixed_when_local() -> None:
    def expand(is_global: bool) -> NodeResult:
        graph = {"x.1": {"class_type": "Value", "inputs": {"value": "inner"}}}
        return NodeResult((["x.1", 0],), None, graph, expand_ids_global=is_global)

    node = Definition("Expand", [inp("is_global", "BOOLEAN")], [OutputSpec("*", "o")], expand)
    registry = make_registry(node)

    def executed(is_global: bool) -> list[str]:
        prompt = {
            "e": {"class_type": "Expand", "inputs": {"is_global": is_global}},
            "s": {"class_type": "Show", "inputs": {"value": ["e", 0]}},
        }
        result, events = run(registry, prompt)
        assert result.outputs["s"] == {"shown": ["inner"]}
        return [d["node"] for e, d in events if e == "executing" and d["node"] not in (None, "e", "s")]

    assert executed(True) == ["x.1"]
    assert executed(False) == ["e.x.1"]


def test_the_final_executing_event_can_be_left_to_the_caller() -> None:
    registry = make_registry()
    prompt = {
        "a": {"class_type": "Value", "inputs": {"value": 1}},
        "s": {"class_type": "Show", "inputs": {"value": ["a", 0]}},
    }
    _, events = run(registry, prompt)
    assert events[-1] == ("executing", {"node": None, "prompt_id": "p"})
    _, events = run(registry, prompt, announce_end=False)
    assert ("executing", {"node": None, "prompt_id": "p"}) not in events


def test_progress_state_events_carry_comfyui_payload() -> None:
    def work(value: Any) -> Any:
        ctx = current_context()
        assert ctx is not None
        ctx.set_progress(3, 4)
        snapshots.append({k: dict(v) for k, v in states[-1]["nodes"].items()})
        return value

    snapshots: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    registry = make_registry(Definition("Work", [inp("value", "*")], [OutputSpec("*", "o")], work))
    prompt = {
        "w": {"class_type": "Work", "inputs": {"value": 1}},
        "s": {"class_type": "Show", "inputs": {"value": ["w", 0]}},
    }
    checked = validate_prompt(prompt, registry)

    def emit(event: str, data: Any) -> None:
        if event == "progress_state":
            states.append(data)

    Executor(registry).execute_sync("p", checked.prompt, checked.outputs, order=checked.order, emit=emit)
    assert snapshots == [
        {
            "w": {
                "value": 3.0,
                "max": 4.0,
                "state": "running",
                "node_id": "w",
                "prompt_id": "p",
                "display_node_id": "w",
                "parent_node_id": None,
                "real_node_id": "w",
            }
        }
    ]
    final = states[-1]
    assert final["prompt_id"] == "p" and {k: v["state"] for k, v in final["nodes"].items()} == {
        "w": "finished",
        "s": "finished",
    }


def test_hidden_inputs_of_other_kinds_come_from_the_prompt_and_undeclared_constants_do_not_reach_the_node() -> None:
    got: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> Any:
        got.append(kwargs)
        return 0

    node = Definition(
        "Hidden",
        [inp("a", "INT"), inp("extra", "*", "hidden"), inp("me", "UNIQUE_ID", "hidden")],
        [OutputSpec("*", "o")],
        record,
    )
    registry = make_registry(node)
    prompt = {
        "v": {"class_type": "Value", "inputs": {"value": "linked"}},
        "h": {"class_type": "Hidden", "inputs": {"a": 1, "extra": ["v", 0], "stray": 5, "more": ["v", 0]}},
        "s": {"class_type": "Show", "inputs": {"value": ["h", 0]}},
    }
    run(registry, prompt)
    assert got == [{"a": 1, "extra": "linked", "more": "linked", "me": "h"}]
