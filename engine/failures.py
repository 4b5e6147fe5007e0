"""How a failed run is reported: ComfyUI's ``execution_error`` payload, with or without a node."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from typing import Any

from .schedule import RunNode


class NodeError(Exception):
    """A node failed; carries the ComfyUI-shaped ``execution_error`` payload."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("exception_message", "node failed"))
        self.payload = payload


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def full_type_name(cls: type) -> str:
    """ComfyUI's ``exception_type``: the qualified name, without ``builtins.`` for built-in types."""
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def node_error_payload(
    prompt_id: str, node: RunNode, exc: BaseException, values: Mapping[str, Any], executed: list[str]
) -> dict[str, Any]:
    """What clients and the history are told when ``node`` raised ``exc`` on ``values``."""
    return {
        "prompt_id": prompt_id,
        "node_id": node.id,
        "display_node": node.display,
        "node_type": node.raw["class_type"],
        "executed": list(executed),
        "exception_message": str(exc) or type(exc).__name__,
        "exception_type": full_type_name(type(exc)),
        "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__),
        "current_inputs": {k: [_short(x) for x in v] if isinstance(v, list) else _short(v) for k, v in values.items()},
        "current_outputs": {},
    }


def engine_error_payload(prompt_id: str, exc: BaseException, executed: list[str]) -> dict[str, Any]:
    """The payload for a failure no node can be blamed for (the run had not started one)."""
    return {
        "prompt_id": prompt_id,
        "node_id": None,
        "node_type": None,
        "executed": list(executed),
        "exception_message": str(exc),
        "exception_type": type(exc).__name__,
        "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__),
        "current_inputs": {},
        "current_outputs": {},
    }
