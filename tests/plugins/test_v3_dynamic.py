"""ComfyUI's dynamic v3 inputs (``io.Autogrow``, ``io.DynamicCombo``, ``io.DynamicSlot``) and ``io.MatchType``
templates, through a real server: what /object_info publishes, what ``execute`` receives for
the flattened inputs of a prompt, and what validation refuses, naming node and input.

The expected /object_info entries and nested values are the ones ComfyUI 0.8.0 gives for the
same declarations (``comfy_api/latest/_io.py``: ``get_v1_info``, ``get_finalized_class_inputs``
and ``build_nested_inputs``), written out here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.validation import validate_prompt
from tests.support.server import LiveServer, serve

DYNAMIC_PACKS = Path(__file__).parent / "dynamic_packs"


@pytest.fixture(scope="module")
def dyn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(tmp_path_factory.mktemp("v3dyn"), load_plugins=True, extra_custom_node_dirs=[DYNAMIC_PACKS])


def run(server: LiveServer, prompt: dict[str, Any]) -> dict[str, Any]:
    history = server.wait_history(server.queue_prompt(prompt))
    assert history["status"]["status_str"] == "success", history["status"]
    return history["outputs"]


def received(outputs: dict[str, Any], node: str) -> dict[str, Any]:
    """The arguments the node's ``execute`` got (its ui text is their JSON)."""
    (text,) = outputs[node]["text"]
    return json.loads(text)


def refused(server: LiveServer, prompt: dict[str, Any]) -> dict[str, Any]:
    status, body = server.post("/prompt", {"prompt": prompt})
    assert status == 400, body
    return body["node_errors"]


def errors_of(node_errors: dict[str, Any], node: str) -> list[tuple[str, str, str]]:
    return [(e["type"], e["extra_info"].get("input_name"), e["details"]) for e in node_errors[node]["errors"]]


# -- /object_info --------------------------------------------------------------------------------
def test_object_info_publishes_dynamic_inputs_as_comfyui_does(dyn_server: LiveServer):
    status, info = dyn_server.get("/object_info")
    assert status == 200
    collect = info["DynCollect"]
    assert collect["input"]["required"]["values"] == [
        "COMFY_AUTOGROW_V3",
        {
            "template": {
                "input": {"required": {"value": ["FLOAT", {"min": -10.0, "max": 10.0, "forceInput": True}]}},
                "prefix": "value",
                "min": 2,
                "max": 4,
            }
        },
    ]
    assert collect["input_order"]["required"] == ["values", "label"]
    assert info["DynNamed"]["input"]["optional"]["words"] == [
        "COMFY_AUTOGROW_V3",
        {
            "template": {
                "input": {"required": {"word": ["STRING", {"multiline": False, "forceInput": True}]}},
                "names": ["first", "second", "third"],
                "min": 1,
            }
        },
    ]
    mode_type, mode = info["DynResize"]["input"]["required"]["mode"]
    assert mode_type == "COMFY_DYNAMICCOMBO_V3"
    assert [option["key"] for option in mode["options"]] == ["scale", "size", "nested", "grow"]
    assert mode["options"][1]["inputs"] == {
        "required": {
            "width": ["INT", {"default": 8, "min": 1, "max": 64}],
            "height": ["INT", {"default": 8, "min": 1, "max": 64}],
            "crop": ["COMBO", {"default": "center", "multiselect": False, "options": ["disabled", "center"]}],
        }
    }
    sub_type, sub = mode["options"][2]["inputs"]["required"]["sub"]
    assert sub_type == "COMFY_DYNAMICCOMBO_V3"
    assert sub["options"][1] == {
        "key": "b",
        "inputs": {"required": {}, "optional": {"note": ["STRING", {"multiline": False}]}},
    }
    assert mode["options"][3]["inputs"]["required"]["ns"][1]["template"]["prefix"] == "n"


def test_object_info_publishes_match_types_as_comfyui_does(dyn_server: LiveServer):
    _, info = dyn_server.get("/object_info")
    pick = info["DynNumberPick"]
    template = {"template_id": "number", "allowed_types": "INT,FLOAT"}
    assert pick["input"]["required"] == {
        "a": ["COMFY_MATCHTYPE_V3", {"template": template}],
        "b": ["COMFY_MATCHTYPE_V3", {"template": template}],
    }
    assert pick["output"] == ["COMFY_MATCHTYPE_V3"] and pick["output_name"] == ["MATCHTYPE"]
    assert pick["output_matchtypes"] == ["number"]
    switch = info["DynSwitch"]
    assert switch["input"]["required"]["on_true"] == [
        "COMFY_MATCHTYPE_V3",
        {"template": {"template_id": "switch", "allowed_types": "*"}, "lazy": True},
    ]
    assert switch["output_name"] == ["output"] and switch["output_matchtypes"] == ["switch"]
    item = info["DynFirstOf"]["input"]["required"]["items"][1]["template"]["input"]["required"]["item"]
    assert item == [
        "COMFY_MATCHTYPE_V3",
        {"lazy": True, "template": {"template_id": "item", "allowed_types": "INT,FLOAT,STRING"}},
    ]
    assert "output_matchtypes" not in info["DynCollect"]  # only nodes with templated outputs carry it


# -- what execute receives -------------------------------------------------------------------------
def test_autogrow_values_arrive_as_one_dict_in_template_order(dyn_server: LiveServer):
    prompt = {
        "f": {"class_type": "DynFloat", "inputs": {"value": 1.5}},
        "c": {
            "class_type": "DynCollect",
            "inputs": {"values.value3": 4.0, "values.value0": ["f", 0], "values.value1": 2.0, "label": "total"},
        },
        "s": {"class_type": "DynShow", "inputs": {"value": ["c", 0]}},
        "n": {"class_type": "DynNamed", "inputs": {"words.third": "c", "words.first": "a"}},
        "e": {"class_type": "DynNamed", "inputs": {}},
    }
    outputs = run(dyn_server, prompt)
    values = received(outputs, "c")["values"]
    assert list(values.items()) == [("value0", 1.5), ("value1", 2.0), ("value3", 4.0)]
    assert received(outputs, "c")["label"] == "total"
    assert received(outputs, "s") == {"value": 7.5}  # the node's output, made from the dict
    assert list(received(outputs, "n")["words"].items()) == [("first", "a"), ("third", "c")]
    assert received(outputs, "e") == {}  # an optional Autogrow with nothing linked is left out, as in ComfyUI


@pytest.mark.parametrize(
    ("inputs", "mode"),
    [
        # a sub-input of an option not chosen (a stale widget value) is not passed
        ({"mode": "scale", "mode.multiplier": 2.5, "mode.width": 7}, {"multiplier": 2.5, "mode": "scale"}),
        (
            {"mode": "size", "mode.width": 4, "mode.height": 6, "mode.crop": "disabled"},
            {"width": 4, "height": 6, "crop": "disabled", "mode": "size"},
        ),
        # an optional sub-input left out arrives as None, as in ComfyUI
        ({"mode": "nested", "mode.sub": "b"}, {"sub": {"note": None, "sub": "b"}, "mode": "nested"}),
        ({"mode": "nested", "mode.sub": "a", "mode.sub.count": 3}, {"sub": {"count": 3, "sub": "a"}, "mode": "nested"}),
        ({"mode": "grow", "mode.ns.n0": 5, "mode.ns.n2": 6}, {"ns": {"n0": 5, "n2": 6}, "mode": "grow"}),
    ],
)
def test_dynamic_combo_passes_the_chosen_key_and_its_inputs(dyn_server: LiveServer, inputs, mode):
    outputs = run(dyn_server, {"r": {"class_type": "DynResize", "inputs": {**inputs, "batch": 2}}})
    assert received(outputs, "r") == {"mode": mode, "batch": 2}


def test_linked_sub_inputs_and_the_cache(dyn_server: LiveServer):
    """A sub-input may be linked; changing only a sub-input's value runs the node again."""

    def prompt(height: int) -> dict[str, Any]:
        return {
            "i": {"class_type": "DynInt", "inputs": {"value": 9}},
            "r": {
                "class_type": "DynResize",
                "inputs": {
                    "mode": "size",
                    "mode.width": ["i", 0],
                    "mode.height": height,
                    "mode.crop": "center",
                    "batch": 1,
                },
            },
        }

    assert received(run(dyn_server, prompt(3)), "r")["mode"] == {
        "width": 9,
        "height": 3,
        "crop": "center",
        "mode": "size",
    }
    assert received(run(dyn_server, prompt(5)), "r")["mode"]["height"] == 5


def test_fingerprint_inputs_gets_the_nested_values(dyn_server: LiveServer):
    state = dyn_server.server.registry["DynNamed"].cls.execute.__func__.__globals__["STATE"]

    def runs(first: str) -> int:
        prompt = {"n": {"class_type": "DynNamed", "inputs": {"words.first": first, "words.second": "b"}}}
        for _ in range(2):
            assert received(run(dyn_server, prompt), "n") == {"words": {"first": first, "second": "b"}}
        return state[first]

    assert runs("steady") == 1  # the second run reuses the first
    assert runs("volatile") == 2  # NaN from fingerprint_inputs(words={"first": "volatile", ...})


def test_validate_inputs_gets_the_nested_values(dyn_server: LiveServer):
    prompt = {
        "f": {"class_type": "DynFloat", "inputs": {"value": 1.0}},
        "c": {"class_type": "DynCollect", "inputs": {"values.value0": ["f", 0], "values.value1": 7.0, "label": "x"}},
    }
    ((kind, _, details),) = errors_of(refused(dyn_server, prompt), "c")
    assert kind == "custom_validation_failed"
    assert '7 is unlucky (values were {"value0": null, "value1": 7.0})' in details
    # naming ``values`` does not excuse its copies from their range check (the names differ)
    prompt["c"]["inputs"]["values.value1"] = 11.0
    assert errors_of(refused(dyn_server, prompt), "c") == [("value_bigger_than_max", "values.value1", "values.value1")]


# -- validation of the flattened inputs ----------------------------------------------------------
def test_autogrow_copies_given_are_range_checked_and_min_is_not_enforced(dyn_server: LiveServer):
    """ComfyUI's server does not enforce an Autogrow's ``min`` (its frontend shows the
    sockets): a workflow with fewer copies must run here as it runs there."""
    node_errors = refused(
        dyn_server,
        {
            "c": {"class_type": "DynCollect", "inputs": {"values.value0": 1.0, "values.value2": 50.0, "label": "x"}},
            "n": {"class_type": "DynNamed", "inputs": {"words.second": 3}},
        },
    )
    assert node_errors["c"]["class_type"] == "DynCollect"
    assert sorted(errors_of(node_errors, "c")) == [("value_bigger_than_max", "values.value2", "values.value2")]
    # a STRING copy given a number is refused like any STRING widget
    assert [e[:2] for e in errors_of(node_errors, "n")] == [("invalid_input_type", "words.second")]


def test_dynamic_combo_choice_and_the_chosen_options_inputs_are_checked(dyn_server: LiveServer):
    node_errors = refused(
        dyn_server,
        {
            "a": {"class_type": "DynResize", "inputs": {"mode": "size", "mode.width": 4, "batch": 1}},
            "b": {"class_type": "DynResize", "inputs": {"mode": "zoom", "batch": 1}},
            "c": {"class_type": "DynResize", "inputs": {"mode": "scale", "mode.multiplier": 100.0, "batch": 1}},
            "d": {"class_type": "DynResize", "inputs": {"mode": "nested", "mode.sub": "a", "batch": 1}},
            "e": {"class_type": "DynResize", "inputs": {"batch": 1}},
        },
    )
    assert sorted(errors_of(node_errors, "a")) == [
        ("required_input_missing", "mode.crop", "mode.crop"),
        ("required_input_missing", "mode.height", "mode.height"),
    ]
    assert errors_of(node_errors, "b") == [
        ("value_not_in_list", "mode", "mode: 'zoom' not in ['scale', 'size', 'nested', 'grow']")
    ]
    assert errors_of(node_errors, "c") == [("value_bigger_than_max", "mode.multiplier", "mode.multiplier")]
    assert errors_of(node_errors, "d") == [("required_input_missing", "mode.sub.count", "mode.sub.count")]
    assert errors_of(node_errors, "e") == [("required_input_missing", "mode", "mode")]


# -- MatchType templates ------------------------------------------------------------------------------
def test_match_type_outputs_carry_the_bound_type(dyn_server: LiveServer):
    outputs = run(
        dyn_server,
        {
            "i": {"class_type": "DynInt", "inputs": {"value": 4}},
            "j": {"class_type": "DynInt", "inputs": {"value": 6}},
            "p": {"class_type": "DynNumberPick", "inputs": {"a": ["i", 0], "b": ["j", 0]}},
            "w": {"class_type": "DynSwitch", "inputs": {"switch": True, "on_true": ["p", 0], "on_false": ["i", 0]}},
            "o": {"class_type": "DynIntOnly", "inputs": {"value": ["w", 0]}},  # INT through two templates
        },
    )
    assert received(outputs, "o") == {"value": 6}


def test_match_type_refuses_disallowed_and_disagreeing_links(dyn_server: LiveServer):
    node_errors = refused(
        dyn_server,
        {
            "i": {"class_type": "DynInt", "inputs": {"value": 1}},
            "f": {"class_type": "DynFloat", "inputs": {"value": 1.0}},
            "t": {"class_type": "DynText", "inputs": {"value": "x"}},
            # STRING is not among the template's allowed types
            "p": {"class_type": "DynNumberPick", "inputs": {"a": ["i", 0], "b": ["t", 0]}},
            "s1": {"class_type": "DynShow", "inputs": {"value": ["p", 0]}},
            # INT binds the template, then FLOAT disagrees
            "q": {"class_type": "DynNumberPick", "inputs": {"a": ["i", 0], "b": ["f", 0]}},
            "s2": {"class_type": "DynShow", "inputs": {"value": ["q", 0]}},
            # the switch is bound to STRING, so its output cannot feed an INT input
            "w": {"class_type": "DynSwitch", "inputs": {"switch": True, "on_true": ["t", 0], "on_false": ["t", 0]}},
            "o": {"class_type": "DynIntOnly", "inputs": {"value": ["w", 0]}},
            # copies of an Autogrow share the template of their MatchType input
            "g": {"class_type": "DynFirstOf", "inputs": {"items.item0": ["i", 0], "items.item1": ["t", 0]}},
            "s3": {"class_type": "DynShow", "inputs": {"value": ["g", 0]}},
        },
    )
    assert errors_of(node_errors, "p") == [
        ("return_type_mismatch", "b", "b, received_type(STRING) mismatch input_type(INT,FLOAT)")
    ]
    assert errors_of(node_errors, "q") == [
        (
            "return_type_mismatch",
            "b",
            "b, received_type(FLOAT) mismatch input_type(INT): template 'number' is bound to INT by input 'a'",
        )
    ]
    assert errors_of(node_errors, "o") == [
        ("return_type_mismatch", "value", "value, received_type(STRING) mismatch input_type(INT)")
    ]
    assert node_errors["o"]["class_type"] == "DynIntOnly" and "w" not in node_errors
    assert errors_of(node_errors, "g") == [
        (
            "return_type_mismatch",
            "items.item1",
            "items.item1, received_type(STRING) mismatch input_type(INT): template 'item' is bound to INT by input 'items.item0'",
        )
    ]


def test_lazy_autogrow_copies_are_asked_for_by_flattened_name(dyn_server: LiveServer):
    outputs = run(
        dyn_server,
        {
            "i": {"class_type": "DynInt", "inputs": {"value": 8}},
            "b": {"class_type": "DynBoom", "inputs": {}},
            "g": {"class_type": "DynFirstOf", "inputs": {"items.item0": ["i", 0], "items.item1": ["b", 0]}},
            "s": {"class_type": "DynShow", "inputs": {"value": ["g", 0]}},
        },
    )
    assert received(outputs, "s") == {"value": 8}  # DynBoom, lazy and never asked for, did not run


def test_a_long_chain_of_switches_binds_without_recursion(dyn_server: LiveServer):
    """Bindings are resolved upstream first by an explicit walk: 1500 switches in a row."""
    registry = dyn_server.server.registry
    prompt: dict[str, Any] = {"t": {"class_type": "DynText", "inputs": {"value": "x"}}}
    previous = "t"
    for index in range(1500):
        node = f"w{index}"
        prompt[node] = {
            "class_type": "DynSwitch",
            "inputs": {"switch": True, "on_true": [previous, 0], "on_false": ["t", 0]},
        }
        previous = node
    prompt["o"] = {"class_type": "DynIntOnly", "inputs": {"value": [previous, 0]}}
    result = validate_prompt(prompt, registry)
    assert list(result.node_errors) == ["o"]
    assert "received_type(STRING)" in result.node_errors["o"]["errors"][0]["details"]


# -- DynamicSlot ---------------------------------------------------------------------------------------
def test_dynamic_slot_is_published_as_comfyui_does(dyn_server: LiveServer):
    _, info = dyn_server.get("/object_info")
    hint = info["DynHint"]
    assert hint["input"]["optional"]["hint"] == [
        "COMFY_DYNAMICSLOT_V3",
        {
            "slotType": "INT",
            "inputs": {
                "required": {"strength": ["FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0}]},
                "optional": {"note": ["STRING", {"multiline": False}]},
            },
            "forceInput": True,
        },
    ]
    assert hint["input_order"]["optional"] == ["hint"]


def test_dynamic_slot_brings_its_inputs_once_given(dyn_server: LiveServer):
    outputs = run(
        dyn_server,
        {
            "i": {"class_type": "DynInt", "inputs": {"value": 9}},
            "bare": {"class_type": "DynHint", "inputs": {"base": 2, "hint.strength": 0.75}},
            "given": {"class_type": "DynHint", "inputs": {"base": 3, "hint": ["i", 0], "hint.strength": 0.25}},
        },
    )
    # not given: nothing for the slot, and a stale sub-input value is not passed (as in ComfyUI)
    assert received(outputs, "bare") == {"base": 2}
    # given: the slot's value under its own name, its inputs beside it, the optional one as None
    assert received(outputs, "given") == {"base": 3, "hint": {"strength": 0.25, "note": None, "hint": 9}}


def test_dynamic_slot_inputs_are_checked_once_it_is_given(dyn_server: LiveServer):
    node_errors = refused(
        dyn_server,
        {
            "i": {"class_type": "DynInt", "inputs": {"value": 9}},
            "t": {"class_type": "DynText", "inputs": {"value": "x"}},
            "a": {"class_type": "DynHint", "inputs": {"base": 1, "hint": ["i", 0]}},
            "b": {"class_type": "DynHint", "inputs": {"base": 1, "hint": ["i", 0], "hint.strength": 2.0}},
            "c": {"class_type": "DynHint", "inputs": {"base": 1, "hint": ["t", 0], "hint.strength": 0.5}},
        },
    )
    assert errors_of(node_errors, "a") == [("required_input_missing", "hint.strength", "hint.strength")]
    assert errors_of(node_errors, "b") == [("value_bigger_than_max", "hint.strength", "hint.strength")]
    assert errors_of(node_errors, "c") == [
        ("return_type_mismatch", "hint", "hint, received_type(STRING) mismatch input_type(INT)")
    ]
