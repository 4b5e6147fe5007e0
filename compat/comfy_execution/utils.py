"""``comfy_execution.utils``: which node is running (``get_executing_context``)."""

from __future__ import annotations

from typing import NamedTuple

from engine.context import current_context


class ExecutionContext(NamedTuple):
    """ComfyUI's view of the running node: prompt, node and list index (Weft: always 0)."""

    prompt_id: str
    node_id: str
    list_index: int | None


def get_executing_context() -> ExecutionContext | None:
    """The running node, or ``None`` outside a run; follows the node into its coroutines."""
    ctx = current_context()
    if ctx is None:
        return None
    return ExecutionContext(ctx.prompt_id, ctx.node_id, None)


__all__ = ["ExecutionContext", "get_executing_context"]
