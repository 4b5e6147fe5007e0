"""Every error the validator reports, one test each, in ComfyUI's shape.

A client shows ``node_errors[id]["errors"]`` (each ``{type, message, details, extra_info}``)
beside the node and the prompt-level ``error`` in a dialog, so the keys and the ``type``
strings are a contract: ComfyUI's frontend and scripts match on them.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

import engine.validation as validation
from engine import ValidationResult, normalise_prompt, validate_prompt, validate_prompt_async
from engine.resources import Estimate
from tests.engine.tiny_nodes import Definition, inp, make_registry, out

KEYS = {"type", "message", "details", "extra_info"}

RANGED = Definition(
    "Ranged",
    [
        inp("count", "INT", min=1, max=10, default=5),
        inp("scale", "FLOAT", min=0.0, max=1.0),
        inp("mode", "COMBO", choices=["fast", "slow"]),
        inp("label", "STRING", "optional"),
        inp("flag", "BOOLEAN", "optional"),
    ],
    [out("INT")],
    lambda count, scale, mode, label="", flag=False: count,
)
REGISTRY = make_registry(RANGED)


def ranged(**inputs: Any) -> dict[str, Any]:
    """A prompt with one ``Ranged`` node (valid unless ``inputs`` override) shown by ``s``."""
    values = {"count": 5, "scale": 0.5, "mode": "fast", **inputs}
    return {"r": {"class_type": "Ranged", "inputs": values}, "s": {"class_type": "Show", "inputs": {"value": ["r", 0]}}}


def check(prompt: dict[str, Any], registry: Any = REGISTRY, **kwargs: Any) -> ValidationResult:
    return validate_prompt(normalise_prompt(prompt), registry, **kwargs)


def only_error(checked: ValidationResult, node_id: str) -> dict[str, Any]:
    """The one error of ``node_id``, after checking the ``node_errors`` entry around it."""
    entry = checked.node_errors[node_id]
    assert set(entry) == {"errors", "dependent_outputs", "class_type"}
    assert len(entry["errors"]) == 1, entry
    error = entry["errors"][0]
    assert set(error) == KEYS and isinstance(error["message"], str) and isinstance(error["details"], str)
    return error


def refused(checked: ValidationResult, kind: str) -> None:
    """The prompt as a whole was refused with a prompt-level error of ``kind``."""
    assert not checked.ok and set(checked.error) == KEYS and checked.error["type"] == kind


def test_invalid_input_type() -> None:
    checked = check(ranged(count="many"))
    refused(checked, "prompt_outputs_failed_validation")
    assert only_error(checked, "r") == {
        "type": "invalid_input_type",
        "message": "Failed to convert an input value to a INT value",
        "details": "count, 'many': expected INT",
        "extra_info": {
            "input_name": "count",
            "input_config": ["INT", {"min": 1, "max": 10, "default": 5}],
            "received_value": "many",
        },
    }
    assert checked.node_errors["r"]["dependent_outputs"] == ["s"] and checked.node_errors["r"]["class_type"] == "Ranged"


@pytest.mark.parametrize(
    "inputs", [{"count": 2.5}, {"count": True}, {"scale": "nan"}, {"scale": False}, {"flag": "maybe"}, {"label": 3}]
)
def test_invalid_input_type_for_each_widget_kind(inputs: dict[str, Any]) -> None:
    name = next(iter(inputs))
    error = only_error(check(ranged(**inputs)), "r")
    assert error["type"] == "invalid_input_type" and error["extra_info"]["input_name"] == name


def test_widget_values_are_converted() -> None:
    checked = check(ranged(count=" 7 ", scale=1, flag="TRUE", label="x", mode="slow"))
    assert checked.ok and checked.prompt["r"]["inputs"] == {
        "count": 7,
        "scale": 1.0,
        "mode": "slow",
        "label": "x",
        "flag": True,
    }
    assert check(ranged(count=4.0)).prompt["r"]["inputs"]["count"] == 4


def test_value_smaller_than_min() -> None:
    assert only_error(check(ranged(count=0)), "r") == {
        "type": "value_smaller_than_min",
        "message": "Value 0 smaller than min of 1",
        "details": "count",
        "extra_info": {
            "input_name": "count",
            "input_config": ["INT", {"min": 1, "max": 10, "default": 5}],
            "received_value": 0,
        },
    }


def test_value_bigger_than_max() -> None:
    error = only_error(check(ranged(scale="1.5")), "r")
    assert error == {
        "type": "value_bigger_than_max",
        "message": "Value 1.5 bigger than max of 1.0",
        "details": "scale",
        "extra_info": {
            "input_name": "scale",
            "input_config": ["FLOAT", {"min": 0.0, "max": 1.0}],
            "received_value": "1.5",
        },
    }


def test_value_not_in_list() -> None:
    assert only_error(check(ranged(mode="medium")), "r") == {
        "type": "value_not_in_list",
        "message": "Value not in list",
        "details": "mode: 'medium' not in ['fast', 'slow']",
        "extra_info": {"input_name": "mode", "input_config": [["fast", "slow"], {}], "received_value": "medium"},
    }


def test_a_long_choice_list_is_cut_in_the_details() -> None:
    many = Definition("Many", [inp("pick", "COMBO", choices=[f"c{i}" for i in range(30)])], [out()], lambda pick: pick)
    prompt = {
        "m": {"class_type": "Many", "inputs": {"pick": "nope"}},
        "s": {"class_type": "Show", "inputs": {"value": ["m", 0]}},
    }
    error = only_error(check(prompt, make_registry(many)), "m")
    assert error["type"] == "value_not_in_list" and error["details"].endswith("'c19', '...']")


def test_a_node_that_checks_its_own_limits_still_gets_converted_values() -> None:
    own = Definition(
        "Own",
        [inp("count", "INT", min=1, max=10)],
        [out("INT")],
        lambda count: count,
        skip_defaults=frozenset({"count"}),
    )
    prompt = {
        "o": {"class_type": "Own", "inputs": {"count": "99"}},
        "s": {"class_type": "Show", "inputs": {"value": ["o", 0]}},
    }
    checked = check(prompt, make_registry(own))
    assert checked.ok and checked.prompt["o"]["inputs"]["count"] == 99


def test_a_wrapped_list_constant_is_unwrapped() -> None:
    prompt = {
        "v": {"class_type": "Value", "inputs": {"value": {"__value__": [1, 2]}}},
        "s": {"class_type": "Show", "inputs": {"value": ["v", 0]}},
    }
    checked = check(prompt)
    assert checked.ok and checked.prompt["v"]["inputs"]["value"] == [1, 2]


def test_required_input_missing() -> None:
    prompt = ranged()
    del prompt["r"]["inputs"]["mode"]
    assert only_error(check(prompt), "r") == {
        "type": "required_input_missing",
        "message": "Required input is missing",
        "details": "mode",
        "extra_info": {"input_name": "mode"},
    }


def test_bad_linked_input_to_a_missing_node() -> None:
    prompt = {"s": {"class_type": "Show", "inputs": {"value": ["gone", 0]}}}
    checked = check(prompt)
    refused(checked, "prompt_outputs_failed_validation")
    assert only_error(checked, "s") == {
        "type": "bad_linked_input",
        "message": "Linked node does not exist",
        "details": "value: node 'gone' is not in the prompt",
        "extra_info": {"input_name": "value", "received_value": ["gone", 0]},
    }


def test_bad_linked_input_to_a_missing_output() -> None:
    prompt = {
        "i": {"class_type": "Int", "inputs": {"value": 1}},
        "s": {"class_type": "Show", "inputs": {"value": ["i", 3]}},
    }
    assert only_error(check(prompt), "s") == {
        "type": "bad_linked_input",
        "message": "Linked output does not exist",
        "details": "value: node 'i' (Int) has 1 outputs, index 3 requested",
        "extra_info": {"input_name": "value", "received_value": ["i", 3]},
    }


def test_return_type_mismatch() -> None:
    prompt = {
        "t": {"class_type": "String", "inputs": {"value": "x"}},
        "i": {"class_type": "Int", "inputs": {"value": ["t", 0]}},
        "s": {"class_type": "Show", "inputs": {"value": ["i", 0]}},
    }
    assert only_error(check(prompt), "i") == {
        "type": "return_type_mismatch",
        "message": "Return type mismatch between linked nodes",
        "details": "value, received_type(STRING) mismatch input_type(INT)",
        "extra_info": {"input_name": "value", "received_type": "STRING", "input_type": "INT"},
    }


def test_custom_validation_failed() -> None:
    picky = Definition(
        "Picky",
        [inp("value", "INT")],
        [out("INT")],
        lambda value: value,
        validate=lambda inputs, types: True if inputs["value"] != 7 else "7 is not allowed here",
    )
    prompt = {
        "p": {"class_type": "Picky", "inputs": {"value": 7}},
        "s": {"class_type": "Show", "inputs": {"value": ["p", 0]}},
    }
    assert only_error(check(prompt, make_registry(picky)), "p") == {
        "type": "custom_validation_failed",
        "message": "Custom validation failed for node",
        "details": "7 is not allowed here",
        "extra_info": {},
    }


def test_exception_during_inner_validation() -> None:
    def broken(inputs: Any, types: Any) -> bool:
        raise KeyError("oops")

    buggy = Definition("Buggy", [inp("value", "INT")], [out("INT")], lambda value: value, validate=broken)
    prompt = {
        "b": {"class_type": "Buggy", "inputs": {"value": 1}},
        "s": {"class_type": "Show", "inputs": {"value": ["b", 0]}},
    }
    assert only_error(check(prompt, make_registry(buggy)), "b") == {
        "type": "exception_during_inner_validation",
        "message": "Exception when validating node",
        "details": "validation raised KeyError: 'oops'",
        "extra_info": {},
    }


def test_an_async_validator_that_raises_is_reported_like_a_sync_one() -> None:
    async def broken(inputs: Any, types: Any) -> bool:
        raise ValueError("later")

    buggy = Definition("Buggy", [inp("value", "INT")], [out("INT")], lambda value: value, validate=broken)
    prompt = {
        "b": {"class_type": "Buggy", "inputs": {"value": 1}},
        "s": {"class_type": "Show", "inputs": {"value": ["b", 0]}},
    }
    error = only_error(check(prompt, make_registry(buggy)), "b")
    assert (
        error["type"] == "exception_during_inner_validation"
        and error["details"] == "validation raised ValueError: later"
    )


def test_missing_node_type() -> None:
    prompt = {
        "v": {"class_type": "Value", "inputs": {"value": 1}},
        "s": {"class_type": "Show", "inputs": {"value": ["v", 0]}},
        "x": {"class_type": "Nope", "inputs": {}},
    }
    checked = check(prompt)
    expected = {
        "type": "missing_node_type",
        "message": "Node 'Nope' not found. The custom node may not be installed.",
        "details": "Node ID '#x'",
        "extra_info": {"node_id": "x", "class_type": "Nope"},
    }
    refused(checked, "missing_node_type")
    assert checked.error == expected and only_error(checked, "x") == expected
    assert checked.node_errors["x"]["class_type"] == "Nope"


def test_a_link_to_a_node_of_unknown_class_adds_no_second_error() -> None:
    prompt = {"x": {"class_type": "Nope", "inputs": {}}, "s": {"class_type": "Show", "inputs": {"value": ["x", 0]}}}
    checked = check(prompt)
    refused(checked, "missing_node_type")
    assert list(checked.node_errors) == ["x"] and checked.node_errors["x"]["dependent_outputs"] == ["s"]


def test_prompt_no_outputs() -> None:
    checked = check({"v": {"class_type": "Value", "inputs": {"value": 1}}})
    refused(checked, "prompt_no_outputs")
    assert checked.error == {
        "type": "prompt_no_outputs",
        "message": "Prompt has no outputs",
        "details": "Add an output node such as PreviewAny or SaveImage.",
        "extra_info": {},
    }
    assert checked.node_errors == {} and checked.outputs == []


def test_prompt_no_outputs_when_only_an_unknown_class_was_targeted() -> None:
    checked = check({"x": {"class_type": "Nope", "inputs": {}}}, targets=[])
    refused(checked, "missing_node_type")


def test_dependency_cycle() -> None:
    prompt = {
        "a": {"class_type": "Value", "inputs": {"value": ["b", 0]}},
        "b": {"class_type": "Value", "inputs": {"value": ["a", 0]}},
        "s": {"class_type": "Show", "inputs": {"value": ["a", 0]}},
    }
    checked = check(prompt)
    refused(checked, "prompt_outputs_failed_validation")
    assert only_error(checked, "a") == {
        "type": "dependency_cycle",
        "message": "Dependency cycle detected",
        "details": "node a depends on itself through its inputs",
        "extra_info": {},
    }
    assert only_error(checked, "b")["type"] == "dependency_cycle"


def test_prompt_outputs_failed_validation() -> None:
    checked = check(ranged(count=0, mode="x"))
    assert checked.error == {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "2 problem(s) in 1 node(s)",
        "extra_info": {},
    }
    assert [e["type"] for e in checked.node_errors["r"]["errors"]] == ["value_smaller_than_min", "value_not_in_list"]


def test_memory_budget_exceeded() -> None:
    big = Definition(
        "Big",
        [inp("mib", "INT")],
        [out()],
        lambda mib: None,
        estimate=lambda inputs: Estimate(inputs["mib"] << 20, (), "mib", "a buffer"),
    )
    prompt = {
        "b": {"class_type": "Big", "inputs": {"mib": 2048}},
        "s": {"class_type": "Show", "inputs": {"value": ["b", 0]}},
    }
    error = only_error(check(prompt, make_registry(big), memory_budget=1 << 30), "b")
    assert error["type"] == "memory_budget_exceeded"
    assert error["message"] == "Node would need more memory than this server allows"
    assert error["details"] == (
        "Big (node b) needs about 2.0 GiB for a buffer; the budget per node is 1.0 GiB "
        "(--max-node-memory). Lower input 'mib', or use a tiled node."
    )
    assert error["extra_info"] == {"input_name": "mib", "estimated_bytes": 2 << 30, "budget_bytes": 1 << 30}


def test_validate_prompt_on_a_running_loop_awaits_async_validators_on_a_helper_thread() -> None:
    async def slow_ok(inputs: Any, types: Any) -> bool:
        await asyncio.sleep(0)
        return True

    node = Definition("Later", [inp("value", "INT")], [out("INT")], lambda value: value, validate=slow_ok)
    prompt = {
        "l": {"class_type": "Later", "inputs": {"value": 1}},
        "s": {"class_type": "Show", "inputs": {"value": ["l", 0]}},
    }

    async def inside_a_loop() -> ValidationResult:
        return check(prompt, make_registry(node))

    assert asyncio.run(inside_a_loop()).ok


def test_large_prompts_are_checked_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "OFFLOAD_NODES", 2)
    checked = asyncio.run(validate_prompt_async(normalise_prompt(ranged(count=math.pi)), REGISTRY))
    assert only_error(checked, "r")["type"] == "invalid_input_type"


def test_numeric_link_ids_become_strings_and_other_pairs_stay_constants() -> None:
    prompt = normalise_prompt(
        {
            1: {"class_type": "Int", "inputs": {"value": 2}},
            2: {"class_type": "Show", "inputs": {"value": [1, 0]}},
            3: {"class_type": "Value", "inputs": {"value": {"__value__": [True, 0]}}},
        }
    )
    assert prompt["2"]["inputs"]["value"] == ["1", 0] and list(prompt) == ["1", "2", "3"]
    assert check(prompt).ok
