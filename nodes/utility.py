"""Nodes that show values to the user."""

from __future__ import annotations

import json
from typing import Any

from .api import Input, Node, Output, Result
from .limits import check_string_length


def to_display_text(value: Any) -> str:
    """Text for a value of any type: strings as they are, JSON where it fits, else repr."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return str(value)
    if value is None:
        return "None"
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return f"{type(value).__name__}(shape={tuple(shape)}, dtype={value.dtype})"
    try:
        return json.dumps(value, indent=4)
    except (TypeError, ValueError):
        return str(value)


class PreviewAny(Node):
    display_name = "Preview as Text"
    category = "utils"
    description = "Shows any value as text on the node, and passes the text on."
    inputs = (Input("source", "*"),)
    outputs = (Output("STRING"),)
    output_node = True

    def run(self, source: Any = None) -> Result:
        text = to_display_text(source)
        # the text is also stored in history and sent to the client as JSON
        check_string_length(len(text), "the text of input 'source'")
        return Result(text, ui={"text": [text]})


NODES = [PreviewAny]
