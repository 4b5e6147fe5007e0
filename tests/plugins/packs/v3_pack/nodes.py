"""The v3 test pack's nodes; see the package docstring for what each part exercises."""

from __future__ import annotations

import asyncio
from typing import Any

from comfy_api.latest import ComfyExtension, io, ui
from comfy_api.v0_0_2 import ComfyAPI, ComfyAPISync
from comfy_execution.graph_utils import GraphBuilder

api = ComfyAPI()
api_sync = ComfyAPISync()

#: what the tests look at: how often on_load ran, how often each counter label ran
STATE: dict[str, Any] = {"on_load": 0, "runs": {}}

CATEGORY = "testing/v3"


class Arithmetic(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3Arithmetic",
            display_name="Arithmetic (v3)",
            category=CATEGORY,
            description="a (op) b",
            inputs=[
                io.Float.Input("a", default=1.0, min=-1000.0, max=1000.0, tooltip="left operand"),
                io.Float.Input("b", default=1.0, min=-1000.0, max=1000.0),
                io.Combo.Input("op", options=["add", "sub", "mul", "div"], default="add"),
            ],
            outputs=[io.Float.Output("result", display_name="result")],
        )

    @classmethod
    def validate_inputs(cls, op: str, b: float | None) -> bool | str:
        if op == "div" and b == 0:
            return "b must not be 0 when op is div"
        return True

    @classmethod
    def execute(cls, a: float, b: float, op: str) -> io.NodeOutput:
        value = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b if b else 0.0}[op]
        return io.NodeOutput(value)


class ShowValue(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3ShowValue",
            category=CATEGORY,
            is_output_node=True,
            inputs=[io.AnyType.Input("value")],
        )

    @classmethod
    def execute(cls, value: Any) -> io.NodeOutput:
        return io.NodeOutput(ui=ui.PreviewText(str(value)))


class LazySwitch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3LazySwitch",
            category=CATEGORY,
            inputs=[
                io.Boolean.Input("use_first", default=True),
                io.AnyType.Input("first", lazy=True),
                io.AnyType.Input("second", lazy=True, optional=True),
            ],
            outputs=[io.AnyType.Output()],
        )

    @classmethod
    def check_lazy_status(cls, use_first: bool, first: Any = None, second: Any = None) -> list[str]:
        if use_first:
            return ["first"] if first is None else []
        return ["second"] if second is None else []

    @classmethod
    def execute(cls, use_first: bool, first: Any = None, second: Any = None) -> io.NodeOutput:
        return io.NodeOutput(first if use_first else second)


class AsyncEcho(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3AsyncEcho",
            category=CATEGORY,
            inputs=[io.String.Input("text", default="hi"), io.Float.Input("seconds", default=0.02, min=0.0, max=5.0)],
            outputs=[io.String.Output()],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    async def execute(cls, text: str, seconds: float) -> io.NodeOutput:
        for step in range(4):
            await asyncio.sleep(seconds / 4)
            await api.execution.set_progress(value=step + 1, max_value=4)
        return io.NodeOutput(f"{text}@{cls.hidden.unique_id}")


class SyncProgress(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3SyncProgress",
            category=CATEGORY,
            inputs=[io.AnyType.Input("value")],
            outputs=[io.AnyType.Output()],
        )

    @classmethod
    def execute(cls, value: Any) -> io.NodeOutput:
        api_sync.execution.set_progress(value=1, max_value=2)
        return io.NodeOutput(value)


class Words(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3Words",
            category=CATEGORY,
            inputs=[io.String.Input("text", multiline=True, default="a b c")],
            outputs=[io.String.Output("words", is_output_list=True)],
        )

    @classmethod
    def execute(cls, text: str) -> io.NodeOutput:
        return io.NodeOutput(text.split())


class Join(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3Join",
            category=CATEGORY,
            is_input_list=True,
            inputs=[io.String.Input("items", force_input=True), io.String.Input("separator", default=",")],
            outputs=[io.String.Output()],
        )

    @classmethod
    def execute(cls, items: list[str], separator: list[str]) -> io.NodeOutput:
        return io.NodeOutput(separator[0].join(str(i) for i in items))


class Repeat(io.ComfyNode):
    """Expands into a chain of V3Arithmetic nodes: ``value`` added ``times`` times."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3Repeat",
            category=CATEGORY,
            enable_expand=True,
            inputs=[
                io.Float.Input("value", default=1.0, min=-100.0, max=100.0),
                io.Int.Input("times", default=3, min=1, max=20),
            ],
            outputs=[io.Float.Output()],
        )

    @classmethod
    def execute(cls, value: float, times: int) -> io.NodeOutput:
        graph = GraphBuilder()
        node = graph.node("V3Arithmetic", a=value, b=0.0, op="add")
        for _ in range(times - 1):
            node = graph.node("V3Arithmetic", a=node.out(0), b=value, op="add")
        return io.NodeOutput(node.out(0), expand=graph.finalize())


class Gate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3Gate",
            category=CATEGORY,
            inputs=[io.AnyType.Input("value"), io.Boolean.Input("open", default=True)],
            outputs=[io.AnyType.Output()],
        )

    @classmethod
    def execute(cls, value: Any, open: bool) -> io.NodeOutput:
        if not open:
            return io.NodeOutput(block_execution="the gate is closed")
        return io.NodeOutput(value)


class Counter(io.ComfyNode):
    """Counts its runs per label; ``volatile`` makes it run every time (``fingerprint_inputs``)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3Counter",
            category=CATEGORY,
            inputs=[io.String.Input("label", default="c"), io.Boolean.Input("volatile", default=False)],
            outputs=[io.Int.Output()],
        )

    @classmethod
    def fingerprint_inputs(cls, label: str, volatile: bool) -> Any:
        return float("nan") if volatile else label

    @classmethod
    def execute(cls, label: str, volatile: bool) -> io.NodeOutput:
        runs = STATE["runs"]
        runs[label] = runs.get(label, 0) + 1
        return io.NodeOutput(runs[label])


class FloatsOnly(io.ComfyNode):
    """Takes a FLOAT or an INT socket, then refuses INT links itself (``input_types``)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3FloatsOnly",
            category=CATEGORY,
            inputs=[io.MultiType.Input(io.Float.Input("value", default=0.5), types=[io.Int])],
            outputs=[io.Float.Output()],
        )

    @classmethod
    def validate_inputs(cls, input_types: dict[str, str], value: float | None = None) -> bool | str:
        if input_types.get("value") == "INT":
            return "value: link a FLOAT, not an INT"
        return True

    @classmethod
    def execute(cls, value: float) -> io.NodeOutput:
        return io.NodeOutput(float(value))


class Describe(io.ComfyNode):
    """Reads hidden values: its own id and the prompt."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3Describe",
            category=CATEGORY,
            inputs=[],
            outputs=[io.String.Output()],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(f"node {cls.hidden.unique_id} of {len(cls.hidden.prompt)}")


class SolidPreview(io.ComfyNode):
    """An IMAGE output that is also shown on the node (``ui.PreviewImage``)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3SolidPreview",
            category=CATEGORY,
            inputs=[
                io.Int.Input("size", default=4, min=1, max=64),
                io.Float.Input("value", default=0.5, min=0.0, max=1.0, display_mode=io.NumberDisplay.slider),
            ],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(cls, size: int, value: float) -> io.NodeOutput:
        import torch

        image = torch.full((1, size, size, 3), value)
        return io.NodeOutput(image, ui=ui.PreviewImage(image, cls=cls))


class MappedUpper(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3MappedUpper", category=CATEGORY, inputs=[io.String.Input("text")], outputs=[io.String.Output()]
        )

    @classmethod
    def execute(cls, text: str) -> io.NodeOutput:
        return io.NodeOutput(text.upper())


NODES: list[type[io.ComfyNode]] = [
    Arithmetic,
    ShowValue,
    LazySwitch,
    AsyncEcho,
    SyncProgress,
    Words,
    Join,
    Repeat,
    Gate,
    Counter,
    FloatsOnly,
    Describe,
    SolidPreview,
]


class V3TestExtension(ComfyExtension):
    async def on_load(self) -> None:
        STATE["on_load"] += 1

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
