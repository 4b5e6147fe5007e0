"""The dynamic-input test pack's nodes; see the package docstring."""

from __future__ import annotations

import json
from typing import Any

from comfy_api.latest import ComfyExtension, _io, io, ui

CATEGORY = "testing/v3_dynamic"

#: runs of DynNamed per first word (the tests read it to see what the cache reused)
STATE: dict[str, int] = {}


def shown(**arguments: Any) -> ui.PreviewText:
    """The arguments as JSON, key order kept (the order of an Autogrow's dict is part of the contract)."""
    return ui.PreviewText(json.dumps(arguments))


class IntSource(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DynInt",
            category=CATEGORY,
            inputs=[io.Int.Input("value", default=1)],
            outputs=[io.Int.Output()],
        )

    @classmethod
    def execute(cls, value: int) -> io.NodeOutput:
        return io.NodeOutput(value)


class FloatSource(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DynFloat",
            category=CATEGORY,
            inputs=[io.Float.Input("value", default=1.0)],
            outputs=[io.Float.Output()],
        )

    @classmethod
    def execute(cls, value: float) -> io.NodeOutput:
        return io.NodeOutput(value)


class TextSource(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DynText",
            category=CATEGORY,
            inputs=[io.String.Input("value", default="")],
            outputs=[io.String.Output()],
        )

    @classmethod
    def execute(cls, value: str) -> io.NodeOutput:
        return io.NodeOutput(value)


class Boom(io.ComfyNode):
    """Fails whenever it runs: a lazy input that is never asked for must never run it."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="DynBoom", category=CATEGORY, outputs=[io.Int.Output()])

    @classmethod
    def execute(cls) -> io.NodeOutput:
        raise RuntimeError("DynBoom ran")


class Show(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="DynShow", category=CATEGORY, is_output_node=True, inputs=[io.AnyType.Input("value")])

    @classmethod
    def execute(cls, value: Any) -> io.NodeOutput:
        return io.NodeOutput(ui=shown(value=value))


class IntOnly(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DynIntOnly",
            category=CATEGORY,
            is_output_node=True,
            inputs=[io.Int.Input("value", force_input=True)],
        )

    @classmethod
    def execute(cls, value: int) -> io.NodeOutput:
        return io.NodeOutput(ui=shown(value=value))


class Collect(io.ComfyNode):
    """Autogrow with a prefix: ``values.value0``, ``values.value1``... at least two."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        template = io.Autogrow.TemplatePrefix(
            io.Float.Input("value", min=-10.0, max=10.0), prefix="value", min=2, max=4
        )
        return io.Schema(
            node_id="DynCollect",
            category=CATEGORY,
            is_output_node=True,
            inputs=[io.Autogrow.Input("values", template=template), io.String.Input("label", default="sum")],
            outputs=[io.Float.Output(display_name="sum")],
        )

    @classmethod
    def validate_inputs(cls, values: dict[str, Any]) -> bool | str:
        """Sees the copies nested, links as ``None``; naming ``values`` keeps the copies' ranges checked."""
        if 7.0 in values.values():
            return f"7 is unlucky (values were {json.dumps(values)})"
        return True

    @classmethod
    def execute(cls, values: io.Autogrow.Type, label: str) -> io.NodeOutput:
        return io.NodeOutput(sum(values.values()), ui=shown(values=values, label=label))


class Named(io.ComfyNode):
    """Autogrow with names: ``words.first``, ``words.second``, ``words.third``; optional."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        template = io.Autogrow.TemplateNames(io.String.Input("word"), names=["first", "second", "third"], min=1)
        return io.Schema(
            node_id="DynNamed",
            category=CATEGORY,
            is_output_node=True,
            inputs=[io.Autogrow.Input("words", template=template, optional=True)],
        )

    @classmethod
    def fingerprint_inputs(cls, words: dict[str, str] | None = None) -> Any:
        """Sees the copies nested: a first word "volatile" makes the node run every time."""
        return float("nan") if (words or {}).get("first") == "volatile" else None

    @classmethod
    def execute(cls, **arguments: Any) -> io.NodeOutput:
        first = arguments.get("words", {}).get("first", "")
        STATE[first] = STATE.get(first, 0) + 1
        return io.NodeOutput(ui=shown(**arguments))


class Resize(io.ComfyNode):
    """A DynamicCombo whose options bring widgets, a nested DynamicCombo and an Autogrow."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        grow = io.Autogrow.TemplatePrefix(io.Int.Input("n"), prefix="n", min=1, max=3)
        return io.Schema(
            node_id="DynResize",
            category=CATEGORY,
            is_output_node=True,
            inputs=[
                io.DynamicCombo.Input(
                    "mode",
                    options=[
                        io.DynamicCombo.Option("scale", [io.Float.Input("multiplier", default=1.0, min=0.1, max=8.0)]),
                        io.DynamicCombo.Option(
                            "size",
                            [
                                io.Int.Input("width", default=8, min=1, max=64),
                                io.Int.Input("height", default=8, min=1, max=64),
                                io.Combo.Input("crop", options=["disabled", "center"], default="center"),
                            ],
                        ),
                        io.DynamicCombo.Option(
                            "nested",
                            [
                                io.DynamicCombo.Input(
                                    "sub",
                                    options=[
                                        io.DynamicCombo.Option("a", [io.Int.Input("count", default=1)]),
                                        io.DynamicCombo.Option("b", [io.String.Input("note", optional=True)]),
                                    ],
                                )
                            ],
                        ),
                        io.DynamicCombo.Option("grow", [io.Autogrow.Input("ns", template=grow)]),
                    ],
                ),
                io.Int.Input("batch", default=1, min=1, max=4),
            ],
        )

    @classmethod
    def execute(cls, mode: io.DynamicCombo.Type, batch: int) -> io.NodeOutput:
        return io.NodeOutput(ui=shown(mode=mode, batch=batch))


class Switch(io.ComfyNode):
    """A MatchType switch: both inputs and the output share one template of any type."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        template = io.MatchType.Template("switch")
        return io.Schema(
            node_id="DynSwitch",
            category=CATEGORY,
            inputs=[
                io.Boolean.Input("switch", default=True),
                io.MatchType.Input("on_true", template=template, lazy=True),
                io.MatchType.Input("on_false", template=template, lazy=True),
            ],
            outputs=[io.MatchType.Output(template=template, display_name="output")],
        )

    @classmethod
    def check_lazy_status(cls, switch: bool, on_true: Any = None, on_false: Any = None) -> list[str]:
        if switch:
            return ["on_true"] if on_true is None else []
        return ["on_false"] if on_false is None else []

    @classmethod
    def execute(cls, switch: bool, on_true: Any = None, on_false: Any = None) -> io.NodeOutput:
        return io.NodeOutput(on_true if switch else on_false)


class NumberPick(io.ComfyNode):
    """A MatchType whose template allows only INT and FLOAT."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        template = io.MatchType.Template("number", allowed_types=[io.Int, io.Float])
        return io.Schema(
            node_id="DynNumberPick",
            category=CATEGORY,
            inputs=[io.MatchType.Input("a", template=template), io.MatchType.Input("b", template=template)],
            outputs=[io.MatchType.Output(template=template)],
        )

    @classmethod
    def execute(cls, a: Any, b: Any) -> io.NodeOutput:
        return io.NodeOutput(max(a, b))


class FirstOf(io.ComfyNode):
    """An Autogrow of lazy MatchType inputs: evaluates only the first linked one.

    ``check_lazy_status`` gets each nested value as ``(value, flattened name)``, as in ComfyUI,
    and answers with the flattened name.
    """

    @classmethod
    def define_schema(cls) -> io.Schema:
        template = io.MatchType.Template("item", allowed_types=[io.Int, io.Float, io.String])
        grow = io.Autogrow.TemplatePrefix(
            io.MatchType.Input("item", template=template, lazy=True), prefix="item", min=1
        )
        return io.Schema(
            node_id="DynFirstOf",
            category=CATEGORY,
            inputs=[io.Autogrow.Input("items", template=grow)],
            outputs=[io.MatchType.Output(template=template, display_name="first")],
        )

    @classmethod
    def check_lazy_status(cls, items: dict[str, tuple[Any, str]]) -> list[str]:
        value, name = next(iter(items.values()))
        return [name] if value is None else []

    @classmethod
    def execute(cls, items: dict[str, Any]) -> io.NodeOutput:
        return io.NodeOutput(next(iter(items.values())))


class Hint(io.ComfyNode):
    """A DynamicSlot (``_io.DynamicSlot``: ComfyUI keeps it out of the public ``io``): an INT
    socket that, once linked, brings a required FLOAT and an optional STRING."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DynHint",
            category=CATEGORY,
            is_output_node=True,
            inputs=[
                io.Int.Input("base", default=1),
                _io.DynamicSlot.Input(
                    io.Int.Input("hint"),
                    [io.Float.Input("strength", default=0.5, min=0.0, max=1.0), io.String.Input("note", optional=True)],
                ),
            ],
        )

    @classmethod
    def execute(cls, base: int, **given: Any) -> io.NodeOutput:
        return io.NodeOutput(ui=shown(base=base, **given))


class DynamicExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [
            IntSource,
            FloatSource,
            TextSource,
            Boom,
            Show,
            IntOnly,
            Collect,
            Named,
            Resize,
            Switch,
            NumberPick,
            FirstOf,
            Hint,
        ]
