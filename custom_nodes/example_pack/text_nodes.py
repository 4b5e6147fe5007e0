"""Text nodes in Weft's contract."""

from __future__ import annotations

import re
import string

from nodes.api import Node, Output, Result, String


class ExampleWordStats(Node):
    """Counts words, lines and characters of a text and shows them on the node."""

    display_name = "Word Stats (example)"
    category = "example_pack/text"
    inputs = (String("text", multiline=True),)
    outputs = (Output("INT", "words"), Output("INT", "lines"), Output("INT", "characters"))
    output_node = True

    def run(self, text: str) -> Result:
        words = len(re.findall(r"\S+", text))
        lines = len(text.splitlines()) if text else 0
        summary = f"{words} words, {lines} lines, {len(text)} characters"
        return Result(words, lines, len(text), ui={"text": [summary]})


class ExampleTextTemplate(Node):
    """Fills ``{a}``, ``{b}`` and ``{c}`` in a template; unknown fields are left as written."""

    display_name = "Text Template (example)"
    category = "example_pack/text"
    inputs = (
        String("template", "A photo of {a}, {b}", multiline=True),
        String("a", optional=True),
        String("b", optional=True),
        String("c", optional=True),
    )
    outputs = (Output("STRING"),)

    def run(self, template: str, a: str = "", b: str = "", c: str = "") -> str:
        values = {"a": a, "b": b, "c": c}

        class _Keep(dict):
            def __missing__(self, key: str) -> str:
                return "{" + key + "}"

        return string.Formatter().vformat(template, (), _Keep(values))
