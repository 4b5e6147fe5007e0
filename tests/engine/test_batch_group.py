"""Prompts run side by side (``Executor.execute_group``): a batchable node called once for all of
them, each prompt with its own events and result, in queue order, and one by one whenever the
batch declines or fails."""

from __future__ import annotations

import asyncio
from typing import Any

from engine import Executor, InterruptFlag, NodeResult, current_context, normalise_prompt, validate_prompt
from engine.batch import GroupMember
from tests.engine.tiny_nodes import CALLS, Definition, inp, make_registry, out

#: every batched call: the values it got, in order
BATCHES: list[list[int]] = []


class Batchable(Definition):
    """``Scale``: value * 10, one by one or (``batch``) for several calls at once."""

    batches = True

    def __init__(self, mode: str = "ok") -> None:
        super().__init__("Scale", [inp("value", "INT"), inp("after", "*", "optional")], [out("INT")], self.alone)
        self.mode = mode

    @staticmethod
    def alone(value: int, after: Any = None) -> NodeResult:
        CALLS.append(("Scale", value))
        if value < 0:
            raise ValueError(f"Scale cannot take {value}")
        return NodeResult((value * 10,))

    def batch(self, calls: list[dict[str, Any]]) -> list[NodeResult] | None:
        BATCHES.append([c["value"] for c in calls])
        if self.mode == "decline":
            return None
        if self.mode == "raise":
            raise RuntimeError("the batch broke")
        ctx = current_context()
        assert ctx is not None
        ctx.progress(1, 1)
        return [NodeResult((c["value"] * 10,)) for c in calls]


def record(value: Any) -> NodeResult:
    CALLS.append(("Record", value))
    return NodeResult(None, {"value": [value]})


RECORD = Definition("Record", [inp("value", "*")], [], record, output_node=True)


def graph(value: int, sleep: float = 0.0, fail: bool = False) -> dict[str, Any]:
    upstream = {"class_type": "Sleep", "inputs": {"seconds": sleep}}
    if fail:
        upstream = {"class_type": "Fail", "inputs": {"message": f"member {value}"}}
    return {
        "0": upstream,
        "1": {"class_type": "Int", "inputs": {"value": value}},
        "2": {"class_type": "Scale", "inputs": {"value": ["1", 0], "after": ["0", 0]}},
        "3": {"class_type": "Record", "inputs": {"value": ["2", 0]}},
    }


def run_group(
    registry: dict[str, Any], prompts: list[dict[str, Any]], flags: list[InterruptFlag] | None = None
) -> tuple[list[Any], dict[str, list[tuple[str, Any]]]]:
    BATCHES.clear()
    events: dict[str, list[tuple[str, Any]]] = {}
    members = []
    for index, prompt in enumerate(prompts):
        checked = validate_prompt(normalise_prompt(prompt), registry)
        assert checked.ok, checked.node_errors
        prompt_id = f"p{index}"
        sink = events.setdefault(prompt_id, [])
        members.append(
            GroupMember(
                prompt_id,
                checked.prompt,
                checked.outputs,
                emit=lambda e, d, sink=sink: sink.append((e, d)),
                interrupt=flags[index] if flags else None,
                order=checked.order,
            )
        )
    results = asyncio.run(Executor(registry).execute_group(members))
    return results, events


def recorded(calls: list[tuple[str, Any]]) -> list[Any]:
    return [value for name, value in calls if name == "Record"]


def test_a_batchable_node_runs_once_for_the_group_and_each_prompt_keeps_its_own_run(calls):
    registry = make_registry(Batchable(), RECORD)
    results, events = run_group(registry, [graph(v) for v in (1, 2, 3, 4)])
    assert BATCHES == [[1, 2, 3, 4]]
    assert [name for name, _ in calls if name == "Scale"] == []  # never called alone
    assert recorded(calls) == [10, 20, 30, 40]  # output nodes in queue order
    for index, result in enumerate(results):
        prompt_id = f"p{index}"
        assert result.status_str == "success", result.error
        assert result.outputs == {"3": {"value": [(index + 1) * 10]}}
        kinds = [e for e, _ in events[prompt_id]]
        assert kinds[0] == "execution_start" and kinds[-1] == "execution_success"
        assert all(d.get("prompt_id") == prompt_id for _, d in events[prompt_id])
        executing = [d["node"] for e, d in events[prompt_id] if e == "executing"]
        assert "2" in executing and "3" in executing
        # the batched call's progress reaches every prompt, under its own id
        assert ("progress", {"value": 1, "max": 1, "prompt_id": prompt_id, "node": "2"}) in events[prompt_id]
        note = {"prompt_id": prompt_id, "node_id": "2", "prompts": ["p0", "p1", "p2", "p3"]}
        assert ["execution_batched", note] in result.messages


def test_the_prompts_resume_in_queue_order_when_the_first_arrives_last(calls):
    registry = make_registry(Batchable(), RECORD)
    results, _ = run_group(registry, [graph(1, sleep=0.05), graph(2), graph(3)])
    assert BATCHES == [[1, 2, 3]]
    assert recorded(calls) == [10, 20, 30]
    assert all(r.status_str == "success" for r in results)


def test_a_declined_batch_runs_each_prompt_alone_in_order(calls):
    registry = make_registry(Batchable("decline"), RECORD)
    results, _ = run_group(registry, [graph(v) for v in (1, 2, 3)])
    assert BATCHES == [[1, 2, 3]]
    assert [v for n, v in calls if n == "Scale"] == [1, 2, 3]
    assert recorded(calls) == [10, 20, 30]
    assert all(r.status_str == "success" for r in results)


def test_a_failed_batch_loses_no_prompt_and_each_failure_is_its_own(calls):
    registry = make_registry(Batchable("raise"), RECORD)
    results, events = run_group(registry, [graph(1), graph(-2), graph(3)])
    assert BATCHES == [[1, -2, 3]]
    assert [r.status_str for r in results] == ["success", "error", "success"]
    assert recorded(calls) == [10, 30]
    error = results[1].error
    assert error["node_id"] == "2" and error["prompt_id"] == "p1"
    assert "Scale cannot take -2" in error["exception_message"]
    assert not any(e == "execution_error" for e, _ in events["p0"] + events["p2"])


def test_a_prompt_that_fails_upstream_does_not_hold_up_the_others(calls):
    registry = make_registry(Batchable(), RECORD)
    results, _ = run_group(registry, [graph(1), graph(2, fail=True), graph(3), graph(4)])
    assert BATCHES == [[1, 3, 4]]
    assert [r.status_str for r in results] == ["success", "error", "success", "success"]
    assert "member 2" in results[1].error["exception_message"]
    assert recorded(calls) == [10, 30, 40]


def test_an_interrupted_prompt_stops_and_the_others_are_batched_without_it(calls):
    registry = make_registry(Batchable(), RECORD)
    flags = [InterruptFlag() for _ in range(3)]
    flags[1].set()
    results, events = run_group(registry, [graph(v) for v in (1, 2, 3)], flags)
    assert [r.interrupted for r in results] == [False, True, False]
    assert BATCHES == [[1, 3]]
    assert recorded(calls) == [10, 30]
    assert any(e == "execution_interrupted" for e, _ in events["p1"])


def test_a_group_of_one_left_calls_the_node_alone(calls):
    registry = make_registry(Batchable(), RECORD)
    results, _ = run_group(registry, [graph(1), graph(2, fail=True)])
    assert [r.status_str for r in results] == ["success", "error"]
    assert BATCHES == []  # the other prompt failed first: nothing to batch with
    assert [v for n, v in calls if n == "Scale"] == [1]
