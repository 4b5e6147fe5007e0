"""An image node in Weft's contract, with a custom web widget for one of its inputs."""

from __future__ import annotations

import re
from typing import Any

from nodes.api import Int, Node, Output, String

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


class ExampleColorSwatch(Node):
    """A solid-colour IMAGE ([1, H, W, 3] in 0..1, ComfyUI's layout).

    ``color`` is a STRING so any client can send it; the ``widget="EXAMPLE_COLOR"`` option
    asks the canvas for the colour picker that ``web/example.js`` registers.
    """

    display_name = "Color Swatch (example)"
    category = "example_pack/image"
    inputs = (
        String("color", "#ff8800", widget="EXAMPLE_COLOR", tooltip="#rrggbb"),
        Int("width", 64, min=1, max=8192),
        Int("height", 64, min=1, max=8192),
    )
    outputs = (Output("IMAGE"),)

    @classmethod
    def validate(cls, color: str = "#000000", **_: Any) -> bool | str:
        return True if _HEX.match(color) else f"color must look like #rrggbb, got {color!r}"

    def run(self, color: str, width: int, height: int) -> Any:
        import torch

        rgb = [int(color[i : i + 2], 16) / 255.0 for i in (1, 3, 5)]
        return torch.tensor(rgb, dtype=torch.float32).expand(1, height, width, 3).contiguous()
