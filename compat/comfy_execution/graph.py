"""``comfy_execution.graph``: ``ExecutionBlocker`` and ``DynamicPrompt`` as Weft's engine has them.

``ExecutionBlocker`` *is* the engine's class, so a pack's blocker stops downstream nodes
exactly as Weft's own nodes' do.
"""

from __future__ import annotations

from typing import Any

from engine.blocker import ExecutionBlocker
from nodes.plugins.graph_tools import DynamicPrompt, NodeNotFoundError

__all__ = ["ExecutionBlocker", "DynamicPrompt", "NodeNotFoundError", "get_input_info"]


def get_input_info(class_def: Any, input_name: str, valid_inputs: Any = None) -> tuple[Any, str | None, Any]:
    """``(type, "required" | "optional" | "hidden", options)`` of a classic node's input."""
    declared = valid_inputs or class_def.INPUT_TYPES()
    for category in ("required", "optional", "hidden"):
        section = declared.get(category) or {}
        if input_name in section:
            spec = section[input_name]
            if category == "hidden":
                return spec, category, None
            if isinstance(spec, (list, tuple)):
                return spec[0], category, spec[1] if len(spec) > 1 else None
            return spec, category, None
    return None, None, None
