"""A classic-contract pack behaves as ComfyUI's contract says, run by Weft's engine."""

from __future__ import annotations

import os

import pytest
import torch

from engine import Executor, InterruptFlag, validate_prompt
from nodes.plugins.classic import ClassicNodeDefinition
from nodes.plugins.graph_tools import GraphBuilder


def run(registry, prompt, executor=None, **kwargs):
    checked = validate_prompt(prompt, registry)
    assert checked.ok, checked.node_errors
    executor = executor or Executor(registry)
    return executor.execute_sync("p", checked.prompt, checked.outputs, order=checked.order, **kwargs)


def test_schema_translation(loaded):
    registry, _ = loaded
    schema = registry["ClassicLazySwitch"].schema
    assert [(i.name, i.type, i.kind, i.lazy) for i in schema.inputs] == [
        ("choose_a", "BOOLEAN", "required", False),
        ("a", "*", "required", True),
        ("b", "*", "required", True),
    ]
    assert schema.display_name == "Lazy Switch (classic)"
    assert schema.category == "tests/classic/logic"
    solid = registry["ClassicSolidImage"].schema
    assert [(o.type, o.name) for o in solid.outputs] == [("IMAGE", "image"), ("MASK", "mask")]
    assert solid.input("width").options == {"default": 8, "min": 1, "max": 4096}
    upscale = registry["ClassicUpscale"].schema.input("method")
    assert upscale.type == "COMBO" and "lanczos" in upscale.choices
    assert registry["ClassicSplitWords"].schema.outputs[0].is_list
    assert registry["ClassicJoinList"].schema.input_is_list
    assert registry["ClassicAsyncEcho"].schema.is_async
    hidden = [(i.name, i.type) for i in registry["ClassicRepeatText"].schema.inputs if i.kind == "hidden"]
    assert hidden == [("unique_id", "UNIQUE_ID"), ("prompt", "PROMPT")]


def test_lazy_inputs_evaluate_only_the_chosen_branch(loaded):
    registry, _ = loaded
    prompt = {
        "a": {"class_type": "ClassicAsyncEcho", "inputs": {"text": "A", "delay": 0.0}},
        "b": {"class_type": "ClassicAsyncEcho", "inputs": {"text": "B", "delay": 0.0}},
        "s": {"class_type": "ClassicLazySwitch", "inputs": {"choose_a": False, "a": ["a", 0], "b": ["b", 0]}},
        "out": {"class_type": "PreviewAny", "inputs": {"source": ["s", 0]}},
    }
    result = run(registry, prompt)
    assert result.outputs["out"]["text"] == ["<B>"]
    assert "b" in result.executed and "a" not in result.executed


def test_output_is_list_maps_downstream_and_input_is_list_gathers(loaded):
    registry, _ = loaded
    prompt = {
        "split": {"class_type": "ClassicSplitWords", "inputs": {"text": "red green blue"}},
        "upper": {"class_type": "ClassicUpper", "inputs": {"text": ["split", 0]}},
        "join": {"class_type": "ClassicJoinList", "inputs": {"items": ["upper", 0], "separator": "+"}},
    }
    result = run(registry, prompt)
    assert result.outputs["join"]["text"] == ["RED+GREEN+BLUE"]


def test_is_changed_reruns_only_when_the_file_changes(loaded, weft_paths):
    registry, _ = loaded
    path = weft_paths.input / "note.txt"
    path.write_text("one")
    prompt = {
        "read": {"class_type": "ClassicTextFile", "inputs": {"file": "note.txt"}},
        "show": {"class_type": "ShowText", "inputs": {"text": ["read", 0]}},
    }
    executor = Executor(registry)
    assert run(registry, prompt, executor).outputs["show"]["text"] == ["one"]
    again = run(registry, prompt, executor)
    assert again.executed == [] and "show" in again.cached
    path.write_text("two")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))
    changed = run(registry, prompt, executor)
    assert "read" in changed.executed
    assert changed.outputs["show"]["text"] == ["two"]


def test_validate_inputs_reports_before_anything_runs(loaded, weft_paths):
    registry, _ = loaded
    (weft_paths.input / "present.txt").write_text("x")
    prompt = {
        "read": {"class_type": "ClassicTextFile", "inputs": {"file": "absent.txt"}},
        "show": {"class_type": "ShowText", "inputs": {"text": ["read", 0]}},
    }
    checked = validate_prompt(prompt, registry)
    errors = checked.node_errors["read"]["errors"]
    assert [e["type"] for e in errors] == ["custom_validation_failed"]
    assert "Invalid text file: absent.txt" in errors[0]["details"]


def test_combo_choices_follow_the_folder(loaded, weft_paths):
    registry, _ = loaded
    definition = registry["ClassicTextFile"]
    (weft_paths.input / "late.txt").write_text("x")
    definition._built_at -= 10  # as if the memo had expired
    assert "late.txt" in definition.schema.input("file").choices


def test_expansion_loop_with_graph_builder(loaded):
    registry, _ = loaded
    prompt = {
        "loop": {"class_type": "ClassicCountdown", "inputs": {"text": "go", "step": "!", "count": 4}},
        "show": {"class_type": "ShowText", "inputs": {"text": ["loop", 0]}},
    }
    result = run(registry, prompt)
    assert result.status_str == "success", result.error
    assert result.outputs["show"]["text"] == ["go!!!!"]


def test_async_classic_nodes_run(loaded):
    registry, _ = loaded
    prompt = {
        "e1": {"class_type": "ClassicAsyncEcho", "inputs": {"text": "x", "delay": 0.01}},
        "e2": {"class_type": "ClassicAsyncEcho", "inputs": {"text": ["e1", 0], "delay": 0.01}},
        "show": {"class_type": "ShowText", "inputs": {"text": ["e2", 0]}},
    }
    assert run(registry, prompt).outputs["show"]["text"] == ["<<x>>"]


def test_execution_blocker_stops_downstream_quietly(loaded):
    registry, _ = loaded
    prompt = {
        "src": {"class_type": "PrimitiveString", "inputs": {"value": "hi"}},
        "gate": {"class_type": "ClassicGate", "inputs": {"text": ["src", 0], "open": False}},
        "show": {"class_type": "ShowText", "inputs": {"text": ["gate", 0]}},
    }
    result = run(registry, prompt)
    assert result.status_str == "success"
    assert "show" not in result.outputs


def test_hidden_inputs_and_dynprompt(loaded):
    registry, _ = loaded
    prompt = {
        "r": {"class_type": "ClassicRepeatText", "inputs": {"text": "ab", "times": 3}},
        "show": {"class_type": "ShowText", "inputs": {"text": ["r", 0]}},
        "count": {"class_type": "ClassicNodeCounter", "inputs": {}},
        "p": {"class_type": "PreviewAny", "inputs": {"source": ["count", 0]}},
    }
    result = run(registry, prompt)
    assert result.outputs["show"]["text"] == ["ababab"]
    assert result.outputs["p"]["text"] == ["4"]


def test_images_keep_comfy_layout_and_progress_is_reported(loaded):
    registry, _ = loaded
    prompt = {
        "solid": {"class_type": "ClassicSolidImage", "inputs": {"width": 5, "height": 3, "value": 0.2}},
        "inv": {"class_type": "ClassicImageInvert", "inputs": {"image": ["solid", 0]}},
        "up": {
            "class_type": "ClassicUpscale",
            "inputs": {"image": ["inv", 0], "method": "bilinear", "width": 10, "height": 6},
        },
        "stats": {"class_type": "ClassicImageStats", "inputs": {"image": ["up", 0], "mask": ["solid", 1]}},
    }
    events = []
    result = run(registry, prompt, emit=lambda e, d: events.append((e, d)))
    assert result.outputs["stats"]["text"] == ["1x6x10x3 mean=0.800 mask=(1, 3, 5)"]
    progress = [d for e, d in events if e == "progress"]
    assert progress == [{"value": 1, "max": 1, "prompt_id": "p", "node": "inv"}]


def test_interrupt_inside_a_classic_node(loaded):
    registry, _ = loaded
    flag = InterruptFlag()

    prompt = {
        "solid": {"class_type": "ClassicSolidImage", "inputs": {"width": 2, "height": 2, "value": 0.5}},
        "inv": {"class_type": "ClassicImageInvert", "inputs": {"image": ["solid", 0]}},
        "stats": {"class_type": "ClassicImageStats", "inputs": {"image": ["inv", 0]}},
    }

    def emit(event, data):
        if event == "executing" and data.get("node") == "inv":
            flag.set()

    result = run(registry, prompt, emit=emit, interrupt=flag)
    assert result.interrupted and "stats" not in result.outputs


def test_a_raising_classic_node_fails_the_run_with_its_id(loaded):
    registry, _ = loaded
    prompt = {
        "up": {
            "class_type": "ClassicUpscale",
            "inputs": {"image": ["solid", 0], "method": "area", "width": 1, "height": 1},
        },
        "solid": {"class_type": "ClassicSolidImage", "inputs": {"width": 2, "height": 2, "value": 0.5}},
        "stats": {"class_type": "ClassicImageStats", "inputs": {"image": ["up", 0]}},
    }
    registry["ClassicUpscale"].cls.upscale, original = (
        (lambda self, **kw: 1 / 0),
        registry["ClassicUpscale"].cls.upscale,
    )
    try:
        result = run(registry, prompt)
    finally:
        registry["ClassicUpscale"].cls.upscale = original
    assert result.error["node_id"] == "up" and result.error["node_type"] == "ClassicUpscale"
    assert "ZeroDivisionError" in result.error["exception_type"]


def test_definition_errors_name_the_class():
    class NoFunction:
        RETURN_TYPES = ("INT",)

        @classmethod
        def INPUT_TYPES(cls):
            return {}

    with pytest.raises(TypeError, match="FUNCTION must name a method"):
        ClassicNodeDefinition(NoFunction, "NoFunction")

    class BareReturnType:
        RETURN_TYPES = "INT"
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def run(self):
            return (1,)

    with pytest.raises(TypeError, match="trailing comma"):
        ClassicNodeDefinition(BareReturnType, "BareReturnType")


def test_return_shapes_are_normalised(loaded):
    registry, _ = loaded
    definition = registry["ClassicImageStats"]
    instance = definition.create()
    result = instance.call({"image": torch.zeros(1, 2, 2, 3)})
    assert result.outputs == ("1x2x2x3 mean=0.000",)
    assert result.ui == {"text": ["1x2x2x3 mean=0.000"]}


def test_graph_builder_ids_are_unique_per_call():
    GraphBuilder.set_default_prefix("7", 0)
    first, second = GraphBuilder(), GraphBuilder()
    a = first.node("X", value=1)
    b = second.node("X", value=a.out(0))
    assert a.id != b.id
    assert second.finalize() == {b.id: {"class_type": "X", "inputs": {"value": [a.id, 0]}}}


def test_unsupported_comfy_module_at_run_time_names_the_pack(loaded):
    registry, _ = loaded
    prompt = {
        "n": {"class_type": "ClassicNeedsSampler", "inputs": {"text": "x"}},
        "show": {"class_type": "ShowText", "inputs": {"text": ["n", 0]}},
    }
    result = run(registry, prompt)
    assert result.error["node_id"] == "n"
    message = result.error["exception_message"]
    assert "comfy.samplers" in message and "not supported in Weft" in message and "'classic_pack'" in message


def test_node_objects_persist_across_runs_per_node_id(loaded):
    registry, _ = loaded
    executor = Executor(registry)

    def counts(salt: int) -> tuple[str, str]:
        prompt = {
            "a": {"class_type": "ClassicRunCounter", "inputs": {"salt": salt}},
            "b": {"class_type": "ClassicRunCounter", "inputs": {"salt": salt + 100}},
            "pa": {"class_type": "PreviewAny", "inputs": {"source": ["a", 0]}},
            "pb": {"class_type": "PreviewAny", "inputs": {"source": ["b", 0]}},
        }
        outputs = run(registry, prompt, executor).outputs
        return outputs["pa"]["text"][0], outputs["pb"]["text"][0]

    assert counts(1) == ("1", "1")
    assert counts(2) == ("2", "2")  # same node ids, same objects: their counters went on
