"""A pack in Weft's own contract: ``WEFT_NODES`` lists ``nodes.api.Node`` subclasses."""

import asyncio

from nodes.api import Int, Node, Output, Result, String


class ReverseText(Node):
    category = "tests/weft"
    description = "The string backwards."
    inputs = (String("text"),)
    outputs = (Output("STRING"),)

    def run(self, text: str) -> str:
        return text[::-1]


class SlowUpper(Node):
    category = "tests/weft"
    description = "Upper-cases after an await; an async node."
    inputs = (String("text"), Int("delay_ms", 5, min=0, max=1000))
    outputs = (Output("STRING"),)

    async def run(self, text: str, delay_ms: int) -> str:
        await asyncio.sleep(delay_ms / 1000)
        return text.upper()


class ShowText(Node):
    category = "tests/weft"
    inputs = (String("text"),)
    outputs = (Output("STRING"),)
    output_node = True

    def run(self, text: str) -> Result:
        return Result(text, ui={"text": [text]})


WEFT_NODES = [ReverseText, SlowUpper, ShowText]
