"""Constant sources: a typed value typed once and wired to many inputs (ComfyUI's Primitive*)."""

from __future__ import annotations

import sys

from .api import Boolean, Float, Int, Node, Output, String


class PrimitiveString(Node):
    display_name = "String"
    category = "utils/primitive"
    description = "A single-line string constant."
    inputs = (String("value"),)
    outputs = (Output("STRING"),)

    def run(self, value: str) -> str:
        return value


class PrimitiveStringMultiline(Node):
    display_name = "String (Multiline)"
    category = "utils/primitive"
    description = "A multi-line string constant."
    inputs = (String("value", multiline=True),)
    outputs = (Output("STRING"),)

    def run(self, value: str) -> str:
        return value


class PrimitiveInt(Node):
    display_name = "Int"
    category = "utils/primitive"
    description = "An integer constant."
    inputs = (Int("value", 0, min=-sys.maxsize, max=sys.maxsize, control_after_generate=True),)
    outputs = (Output("INT"),)

    def run(self, value: int) -> int:
        return value


class PrimitiveFloat(Node):
    display_name = "Float"
    category = "utils/primitive"
    description = "A floating-point constant."
    inputs = (Float("value", 0.0, min=-sys.maxsize, max=sys.maxsize),)
    outputs = (Output("FLOAT"),)

    def run(self, value: float) -> float:
        return value


class PrimitiveBoolean(Node):
    display_name = "Boolean"
    category = "utils/primitive"
    description = "A true/false constant."
    inputs = (Boolean("value"),)
    outputs = (Output("BOOLEAN"),)

    def run(self, value: bool) -> bool:
        return value


NODES = [PrimitiveString, PrimitiveStringMultiline, PrimitiveInt, PrimitiveFloat, PrimitiveBoolean]
