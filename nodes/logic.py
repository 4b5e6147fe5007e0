"""Flow-control and helper nodes of ComfyUI's ``logic`` pack (ComfyUI 0.8.0 registers these two).

``ComfySwitchNode`` picks one of two inputs of any one type; its inputs are lazy, so the
branch not chosen is never run (a whole sampler chain behind it costs nothing).
``CustomCombo`` is the back end of a frontend widget whose choices the user types in; the
server only passes the chosen string on.
"""

from __future__ import annotations

from typing import Any

from .api import Boolean, Combo, Node, Output
from .dynamic import MatchOutput, MatchType


class ComfySwitchNode(Node):
    display_name = "Switch"
    category = "logic"
    experimental = True
    description = "Passes on_true when switch is on, else on_false; only the chosen input is evaluated."
    inputs = (
        Boolean("switch", default=None),  # type: ignore[arg-type]  # ComfyUI states no default
        MatchType("on_false", "switch", lazy=True),
        MatchType("on_true", "switch", lazy=True),
    )
    outputs = (MatchOutput("switch", name="output"),)

    def check_lazy(self, switch: bool, on_false: Any = None, on_true: Any = None) -> list[str]:
        if switch and on_true is None:
            return ["on_true"]
        if not switch and on_false is None:
            return ["on_false"]
        return []

    def run(self, switch: bool, on_false: Any = None, on_true: Any = None) -> tuple:
        return (on_true if switch else on_false,)


class CustomCombo(Node):
    display_name = "Custom Combo"
    category = "utils"
    experimental = True
    description = "Outputs the chosen option of a combo whose options are written in the workflow."
    # the options live in the workflow (the frontend's widgets), so any string is a valid choice
    inputs = (Combo("choice", []),)
    outputs = (Output("STRING"),)
    validates_inputs = ("choice",)  # no check against the (empty) declared list

    def run(self, choice: str) -> tuple:
        return (choice,)


NODES = [ComfySwitchNode, CustomCombo]
