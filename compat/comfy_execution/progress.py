"""``comfy_execution.progress``: per-node progress as packs reach it (``get_progress_state()``).

Updates go to the running prompt's ``progress_state`` events through Weft's execution
context; Weft's engine itself marks nodes running and finished.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from engine.context import current_context


class NodeState(Enum):
    Pending = "pending"
    Running = "running"
    Finished = "finished"
    Error = "error"


class _ProgressState:
    """The part of ComfyUI's progress registry packs call."""

    def update_progress(self, node_id: str, value: float, max_value: float, image: Any = None) -> None:
        ctx = current_context()
        if ctx is not None:
            ctx.set_progress(float(value), float(max_value), node_id)

    def start_progress(self, node_id: str) -> None:
        """The engine marks a node running when it starts it."""

    def finish_progress(self, node_id: str) -> None:
        """The engine marks a node finished when it ends."""


_STATE = _ProgressState()


def get_progress_state() -> _ProgressState:
    return _STATE


__all__ = ["NodeState", "get_progress_state"]
