"""Classic-contract details ComfyUI's own execution suite relies on, through Weft's adapter.

The pack is written to a temporary folder and loaded by the real loader (compatibility
modules on ``sys.path``), then driven by the engine; the server-level behaviours are in
``tests/server/test_comfy_execution_contract.py``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from engine import Executor, validate_prompt
from nodes.plugins import PluginConfig, load_plugins
from nodes.registry import NodeRegistry, builtin_registry

PACK = '''
import asyncio
from comfy_api.v0_0_2 import ComfyAPI, ComfyAPISync
from comfy_execution.graph_utils import GraphBuilder

api, api_sync = ComfyAPI(), ComfyAPISync()
SEEN = []


class Node:
    CATEGORY = "tests"
    RETURN_TYPES = ("*",)
    FUNCTION = "run"


class Num(Node):
    RETURN_TYPES = ("INT",)
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}
    def run(self, value):
        return (value,)


class Named(Node):
    """VALIDATE_INPUTS names its input but takes no input_types: links are still type-checked."""
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("FLOAT,IMAGE",)}}
    @classmethod
    def VALIDATE_INPUTS(cls, x=None):
        SEEN.append(("Named", x))
        return True
    def run(self, x):
        return (x,)


class Typed(Node):
    """VALIDATE_INPUTS takes input_types: it judges linked types itself."""
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("FLOAT,IMAGE",), "y": ("FLOAT", {"min": 0.0, "max": 1.0})}}
    @classmethod
    def VALIDATE_INPUTS(cls, input_types, x=None, y=None):
        SEEN.append(("Typed", dict(input_types), x, y))
        return True if input_types.get("x") != "STRING" else "no strings"
    def run(self, x, y):
        return (x,)


class AsyncCheck(Node):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}
    @classmethod
    async def VALIDATE_INPUTS(cls, value):
        await asyncio.sleep(0)
        return True if value < 10 else f"{value} is too big"
    def run(self, value):
        return (value,)


class Twice(Node):
    """The same name in required and optional (ComfyUI reads the required one)."""
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 1})}, "optional": {"a": ("INT", {"default": 2})}}
    def run(self, a):
        return (a,)


class AsyncLazy(Node):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"first": ("*", {"lazy": True}), "second": ("*", {"lazy": True}),
                             "use_first": ("BOOLEAN", {"default": True})}}
    async def check_lazy_status(self, use_first, first=None, second=None):
        await asyncio.sleep(0)
        wanted = "first" if use_first else "second"
        return [wanted] if locals()[wanted] is None else []
    def run(self, use_first, first=None, second=None):
        SEEN.append(("AsyncLazy", first, second))
        return (first if use_first else second,)


class HiddenValue(Node):
    """A hidden input of no special kind is an ordinary input the prompt may set."""
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}, "hidden": {"override": ("*",)}}
    def run(self, value, **kwargs):
        return (kwargs.get("override", value),)


class Raw(Node):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"source": ("*", {"rawLink": True})}}
    def run(self, source):
        return (f"{source[0]}:{source[1]}",)


class Loop(Node):
    """Expands (with GraphBuilder's default prefix) into a Num node."""
    RETURN_TYPES = ("INT",)
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}
    def run(self, value):
        graph = GraphBuilder()
        node = graph.node("Num", value=value + 1)
        return {"result": (node.out(0),), "expand": graph.finalize()}


class Progress(Node):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}
    def run(self, value):
        api_sync.execution.set_progress(value=2, max_value=5)
        return (value,)


class AsyncProgress(Node):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}
    async def run(self, value):
        await api.execution.set_progress(value=3, max_value=6)
        return (value,)


NODE_CLASS_MAPPINGS = {c.__name__: c for c in (Num, Named, Typed, AsyncCheck, Twice, AsyncLazy, HiddenValue, Raw,
                                                 Loop, Progress, AsyncProgress)}
'''


@pytest.fixture
def pack(weft_paths: Any, tmp_path: Path) -> tuple[NodeRegistry, Any]:
    (tmp_path / "contract_pack.py").write_text(textwrap.dedent(PACK))
    registry = builtin_registry()
    report = load_plugins(registry, PluginConfig(folders=[tmp_path]))
    assert report.pack("contract_pack").status == "loaded", report.pack("contract_pack").node_errors
    module = registry["Num"].cls.run.__globals__
    module["SEEN"].clear()
    return registry, module


def show(source: list[Any]) -> dict[str, Any]:
    return {"class_type": "PreviewAny", "inputs": {"source": source}}


def run(registry: NodeRegistry, prompt: dict[str, Any]) -> tuple[Any, list[tuple[str, Any]]]:
    checked = validate_prompt(prompt, registry)
    assert checked.ok, checked.node_errors
    events: list[tuple[str, Any]] = []
    result = Executor(registry).execute_sync(
        "p", checked.prompt, checked.outputs, order=checked.order, emit=lambda e, d: events.append((e, d))
    )
    assert result.status_str == "success", result.error
    return result, events


def test_naming_an_input_in_validate_inputs_does_not_skip_the_link_type_check(pack):
    registry, module = pack
    prompt = {
        "n": {"class_type": "Num", "inputs": {"value": 1}},
        "x": {"class_type": "Named", "inputs": {"x": ["n", 0]}},
        "s": show(["x", 0]),
    }
    refused = validate_prompt(prompt, registry)
    assert refused.node_errors["x"]["errors"][0]["type"] == "return_type_mismatch"
    constant = {"x": {"class_type": "Named", "inputs": {"x": 0.5}}, "s": show(["x", 0])}
    assert validate_prompt(constant, registry).ok and ("Named", 0.5) in module["SEEN"]


def test_validate_inputs_with_input_types_gets_the_linked_types(pack):
    registry, module = pack
    prompt = {
        "n": {"class_type": "Num", "inputs": {"value": 1}},
        "t": {"class_type": "Typed", "inputs": {"x": ["n", 0], "y": 5.0}},
        "s": show(["t", 0]),
    }
    checked = validate_prompt(prompt, registry)
    # INT into "FLOAT,IMAGE" passes (the node judges types), and y=5 skips max=1 (the node names y)
    assert checked.ok, checked.node_errors
    assert module["SEEN"] == [("Typed", {"x": "INT"}, None, 5.0)]
    strings = {
        "p": {"class_type": "PrimitiveString", "inputs": {"value": "a"}},
        "t": {"class_type": "Typed", "inputs": {"x": ["p", 0], "y": 0.5}},
        "s": show(["t", 0]),
    }
    assert validate_prompt(strings, registry).node_errors["t"]["errors"][0]["details"] == "no strings"


def test_async_validate_inputs_is_awaited(pack):
    registry, _ = pack

    def prompt(value: int) -> dict:
        return {"a": {"class_type": "AsyncCheck", "inputs": {"value": value}}, "s": show(["a", 0])}

    assert validate_prompt(prompt(3), registry).ok
    refused = validate_prompt(prompt(30), registry)
    assert refused.node_errors["a"]["errors"][0]["details"] == "30 is too big"


def test_the_same_name_in_required_and_optional_is_accepted(pack):
    registry, _ = pack
    schema = registry["Twice"].schema
    assert [(i.name, i.kind, i.options.get("default")) for i in schema.inputs] == [("a", "required", 1)]
    result, _ = run(registry, {"t": {"class_type": "Twice", "inputs": {"a": 4}}, "s": show(["t", 0])})
    assert result.outputs["s"]["text"] == ["4"]


def test_async_check_lazy_status_is_awaited(pack):
    registry, module = pack
    prompt = {
        "n1": {"class_type": "Num", "inputs": {"value": 1}},
        "n2": {"class_type": "Num", "inputs": {"value": 2}},
        "l": {"class_type": "AsyncLazy", "inputs": {"first": ["n1", 0], "second": ["n2", 0], "use_first": False}},
        "s": show(["l", 0]),
    }
    result, _ = run(registry, prompt)
    assert result.outputs["s"]["text"] == ["2"] and "n1" not in result.executed
    assert module["SEEN"] == [("AsyncLazy", None, 2)]


def test_a_hidden_input_of_no_special_kind_comes_from_the_prompt(pack):
    registry, _ = pack
    plain, _ = run(registry, {"h": {"class_type": "HiddenValue", "inputs": {"value": 3}}, "s": show(["h", 0])})
    assert plain.outputs["s"]["text"] == ["3"]
    prompt = {
        "n": {"class_type": "Num", "inputs": {"value": 8}},
        "h": {"class_type": "HiddenValue", "inputs": {"value": 3, "override": ["n", 0]}},
        "s": show(["h", 0]),
    }
    linked, _ = run(registry, prompt)
    assert linked.outputs["s"]["text"] == ["8"]


def test_raw_link_inputs_receive_the_link(pack):
    registry, _ = pack
    result, _ = run(
        registry,
        {
            "n": {"class_type": "Num", "inputs": {"value": 1}},
            "r": {"class_type": "Raw", "inputs": {"source": ["n", 0]}},
            "s": show(["r", 0]),
        },
    )
    assert result.outputs["s"]["text"] == ["n:0"] and "n" in result.executed


def test_graph_builder_ids_are_not_prefixed_twice(pack):
    registry, _ = pack
    result, events = run(registry, {"loop": {"class_type": "Loop", "inputs": {"value": 1}}, "s": show(["loop", 0])})
    assert result.outputs["s"]["text"] == ["2"]
    expanded = [d["node"] for e, d in events if e == "executing" and d["node"] not in (None, "loop", "s")]
    assert expanded == ["loop.0.0.1"]  # GraphBuilder's "<node>.<call>.<graph>." prefix, once


def test_comfy_api_set_progress_updates_progress_state(pack):
    registry, _ = pack
    prompt = {
        "n": {"class_type": "Num", "inputs": {"value": 1}},
        "p": {"class_type": "Progress", "inputs": {"value": ["n", 0]}},
        "a": {"class_type": "AsyncProgress", "inputs": {"value": ["p", 0]}},
        "s": show(["a", 0]),
    }
    checked = validate_prompt(prompt, registry)
    seen: dict[str, tuple[float, float, str]] = {}

    def emit(event: str, data: Any) -> None:
        if event == "progress_state":
            for node_id, entry in data["nodes"].items():
                if entry["state"] == "running" and entry["max"] != 1.0:
                    seen[node_id] = (entry["value"], entry["max"], entry["state"])

    Executor(registry).execute_sync("p", checked.prompt, checked.outputs, order=checked.order, emit=emit)
    assert seen == {"p": (2.0, 5.0, "running"), "a": (3.0, 6.0, "running")}
