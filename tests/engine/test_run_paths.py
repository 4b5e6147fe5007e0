"""The executor's less travelled paths: progress and interruption inside a node, hidden inputs,
concurrent list calls, sub-graphs that are refused, and failures no node raised itself."""

from __future__ import annotations

import asyncio
from typing import Any

from engine import ExecutionBlocker, Executor, InterruptFlag, NodeResult, current_context
from tests.engine.tiny_nodes import Definition, inp, make_registry, out, run


def show(source: str) -> dict[str, Any]:
    return {"class_type": "Show", "inputs": {"value": [source, 0]}}


def test_progress_events_and_an_interruption_inside_a_node() -> None:
    flag = InterruptFlag()
    events: list[tuple[str, Any]] = []

    def emit(event: str, data: Any) -> None:
        events.append((event, data))
        if event == "progress" and data["value"] == 2:
            flag.set()  # the user pressed "interrupt" while the node was at step 2

    registry = make_registry()
    prompt = {
        "v": {"class_type": "Value", "inputs": {"value": 1}},
        "w": {"class_type": "Slow", "inputs": {"steps": 5, "value": ["v", 0]}},
        "s": show("w"),
    }
    result = Executor(registry).execute_sync("p", prompt, ["s"], emit=emit, interrupt=flag)
    progress = [d for e, d in events if e == "progress"]
    assert progress == [
        {"value": 1, "max": 5, "prompt_id": "p", "node": "w"},
        {"value": 2, "max": 5, "prompt_id": "p", "node": "w"},
    ]
    assert result.interrupted and result.status_str == "error" and not result.completed
    stopped = next(d for e, d in events if e == "execution_interrupted")
    assert stopped["node_id"] == "w" and stopped["node_type"] == "Slow" and stopped["executed"] == ["v", "w"]


def test_hidden_inputs_the_engine_fills_in() -> None:
    got: list[dict[str, Any]] = []
    kinds = ["UNIQUE_ID", "PROMPT", "EXTRA_PNGINFO", "DYNPROMPT", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"]

    def record(**kwargs: Any) -> int:
        got.append(kwargs)
        return 0

    node = Definition("Hidden", [inp(k.lower(), k, "hidden") for k in kinds], [out()], record)
    prompt = {"h": {"class_type": "Hidden", "inputs": {}}, "s": show("h")}
    extra = {"extra_pnginfo": {"workflow": 1}, "auth_token_comfy_org": "token", "api_key_comfy_org": "key"}
    run(make_registry(node), prompt, extra_data=extra)
    [values] = got
    assert values["unique_id"] == "h" and values["prompt"]["h"]["class_type"] == "Hidden"
    assert values["extra_pnginfo"] == {"workflow": 1} and set(values["dynprompt"]) == {"h", "s"}
    assert values["auth_token_comfy_org"] == "token" and values["api_key_comfy_org"] == "key"


def test_async_calls_of_one_list_node_run_together_and_a_failure_fails_the_node() -> None:
    async def twice(x: int) -> int:
        await asyncio.sleep(0)
        if x < 0:
            raise ValueError("negative")
        return x * 2

    listing = Definition("List", [inp("items", "*")], [out("*", is_list=True)], lambda items: NodeResult((items,)))
    double = Definition("Twice", [inp("x", "*")], [out()], twice)
    registry = make_registry(listing, double)

    def prompt(items: list[int]) -> dict[str, Any]:
        return {
            "l": {"class_type": "List", "inputs": {"items": {"__value__": items}}},
            "d": {"class_type": "Twice", "inputs": {"x": ["l", 0]}},
            "s": show("d"),
        }

    result, _ = run(registry, prompt([1, 2, 3]))
    assert result.outputs["s"] == {"shown": [2, 4, 6]}
    result, _ = run(registry, prompt([1, -1]))
    assert result.error["node_id"] == "d" and result.error["exception_message"] == "negative"


def test_a_failing_lazy_check_fails_the_node() -> None:
    def check(a: Any = None) -> list[str]:
        raise RuntimeError("cannot decide")

    node = Definition("Undecided", [inp("a", "*", lazy=True)], [out()], lambda a=None: a, lazy=check)
    prompt = {
        "v": {"class_type": "Value", "inputs": {"value": 1}},
        "u": {"class_type": "Undecided", "inputs": {"a": ["v", 0]}},
        "s": show("u"),
    }
    result, _ = run(make_registry(node), prompt)
    assert result.error["node_id"] == "u" and result.error["exception_message"] == "cannot decide"
    assert result.error["current_inputs"] == {"a": ["None"]}


def test_sub_graphs_with_unknown_classes_or_cycles_fail_the_expanding_node() -> None:
    graphs = {
        "unknown": {"x": {"class_type": "Nope", "inputs": {}}},
        "cycle": {
            "x": {"class_type": "Value", "inputs": {"value": ["y", 0]}},
            "y": {"class_type": "Value", "inputs": {"value": ["x", 0]}},
        },
    }
    node = Definition(
        "Expand", [inp("which", "STRING")], [out()], lambda which: NodeResult((["x", 0],), expand=graphs[which])
    )
    registry = make_registry(node)
    messages = {}
    for which in graphs:
        result, _ = run(registry, {"e": {"class_type": "Expand", "inputs": {"which": which}}, "s": show("e")})
        assert result.error["node_id"] == "e"
        messages[which] = (result.error["exception_type"], result.error["exception_message"])
    assert messages["unknown"] == ("LookupError", "expanded node 'x' has unknown class 'Nope'")
    assert messages["cycle"] == ("RuntimeError", "expanded graph has a cycle through ['e.x', 'e.y']")


def test_a_list_of_expansions_with_ui_output_nodes_and_a_display_override() -> None:
    def expand(tag: str) -> NodeResult:
        graph = {
            "v": {"class_type": "Value", "inputs": {"value": tag}},
            "inner": {"class_type": "Show", "inputs": {"value": ["v", 0]}, "override_display_id": "o"},
        }
        return NodeResult((["v", 0], "extra"), {"tags": [tag]}, graph)

    listing = Definition("Tags", [], [out("STRING", is_list=True)], lambda: NodeResult((["a", "b"],)))
    node = Definition(
        "Each", [inp("tag", "STRING")], [out("STRING"), out("STRING", "more", is_list=True)], expand, output_node=True
    )
    registry = make_registry(listing, node)
    prompt = {
        "o": {"class_type": "Value", "inputs": {"value": "other"}},
        "t": {"class_type": "Tags", "inputs": {}},
        "e": {"class_type": "Each", "inputs": {"tag": ["t", 0]}},
        "s": show("e"),
        "m": show("o"),
    }
    result, events = run(registry, prompt)
    assert result.outputs["s"] == {"shown": ["a", "b"]} and result.outputs["e"] == {"tags": ["a", "b"]}
    assert result.outputs["o"] == {"shown": ["a", "b"]}  # the inner Show nodes report as "o"
    assert result.outputs["m"] == {"shown": ["other"]}
    inner = sorted(d["node"] for e, d in events if e == "executed" and d["display_node"] == "o")
    assert inner == ["e.0.inner", "e.1.inner"]


def test_a_malformed_node_result_fails_the_run_naming_the_node() -> None:
    node = Definition("Odd", [], [out()], lambda: NodeResult(5))  # type: ignore[arg-type]
    result, _ = run(make_registry(node), {"o": {"class_type": "Odd", "inputs": {}}, "s": show("o")})
    assert result.error["node_id"] == "o" and result.error["exception_type"] == "TypeError"


def test_a_cycle_that_skipped_validation_ends_the_run_with_an_engine_error() -> None:
    prompt = {
        "a": {"class_type": "Value", "inputs": {"value": ["b", 0]}},
        "b": {"class_type": "Value", "inputs": {"value": ["a", 0]}},
        "s": show("a"),
    }
    events: list[tuple[str, Any]] = []
    result = Executor(make_registry()).execute_sync(
        "p", prompt, ["s"], order=["a", "b", "s"], emit=lambda e, d: events.append((e, d))
    )
    assert result.error["node_id"] is None and result.error["exception_type"] == "RuntimeError"
    assert "could not run: their inputs form a cycle" in result.error["exception_message"]
    assert [e for e, _ in events][-2:] == ["execution_error", "executing"]


def test_progress_reported_for_another_node_and_a_blocked_list_node() -> None:
    def work(value: Any) -> Any:
        ctx = current_context()
        assert ctx is not None
        ctx.set_progress(1, 2, node_id="elsewhere")
        ctx.send("custom", {"hello": value})
        return value

    states: list[dict[str, Any]] = []
    node = Definition("Work", [inp("value", "*")], [out()], work)
    joined = Definition("Join", [inp("values", "*")], [out()], lambda values: values, input_is_list=True)
    registry = make_registry(node, joined)
    prompt = {
        "w": {"class_type": "Work", "inputs": {"value": 1}},
        "s": show("w"),
        "g": {"class_type": "Gate", "inputs": {"value": 1, "open": False}},
        "j": {"class_type": "Join", "inputs": {"values": ["g", 0]}},
        "t": show("j"),
    }
    result, events = run(registry, prompt)
    states = [d for e, d in events if e == "progress_state"]
    assert states[-1]["nodes"]["elsewhere"]["real_node_id"] == "elsewhere"
    assert ("custom", {"hello": 1}) in events
    assert "t" not in result.outputs and "j" not in result.executed
    assert isinstance(result.messages, list) and repr(ExecutionBlocker("x")) == "ExecutionBlocker('x')"


def test_execute_without_an_order_validates_first_and_works_inside_a_running_loop() -> None:
    registry = make_registry()
    prompt = {"v": {"class_type": "Value", "inputs": {"value": 3}}, "s": show("v")}

    async def inside() -> Any:
        return Executor(registry).execute_sync("p", prompt, ["s"])

    result = asyncio.run(inside())
    assert result.outputs["s"] == {"shown": [3]}


def test_an_interruption_cancels_async_nodes_still_in_flight() -> None:
    flag = InterruptFlag()

    async def hang() -> int:
        await asyncio.sleep(30)
        return 1

    def stop() -> int:
        flag.set()
        return 2

    registry = make_registry(
        Definition("Hang", [], [out()], hang, is_async=True), Definition("Stop", [], [out()], stop)
    )
    prompt = {
        "h": {"class_type": "Hang", "inputs": {}},
        "x": {"class_type": "Stop", "inputs": {}},
        "s1": show("h"),
        "s2": show("x"),
    }
    result = Executor(registry).execute_sync("p", prompt, ["s1", "s2"], interrupt=flag)
    assert result.interrupted and "h" in result.executed and "s1" not in result.outputs


def test_an_interruption_from_outside_reaches_an_async_node_that_is_all_that_runs() -> None:
    """The server sets the flag from another thread while the run only waits on an async node."""
    import threading
    import time

    flag = InterruptFlag()

    async def hang() -> int:
        await asyncio.sleep(30)
        return 1

    registry = make_registry(Definition("Hang", [], [out()], hang, is_async=True))
    prompt = {"h": {"class_type": "Hang", "inputs": {}}, "s": show("h")}
    threading.Timer(0.2, flag.set).start()
    started = time.monotonic()
    result = Executor(registry).execute_sync("p", prompt, ["s"], interrupt=flag)
    assert result.interrupted and "s" not in result.outputs
    assert time.monotonic() - started < 5
