"""ComfyUI's ``progress_state``: every node that started in a run, with its state and progress.

One live dict per run: each event carries it, and a consumer that queues events (the server)
sends its state at the time of sending, so a long run is not quadratic in nodes. Every change
is emitted; how often the state actually goes over the wire is the consumer's choice (the
server's event bus sends the newest at a bounded rate, and always before the run's end).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .context import EventSink


class ProgressTracker:
    """The run's ``progress_state`` payload and the events that announce its changes.

    ``origin`` answers, for a node id, its display id, its parent (for an expanded node) and
    the node of the prompt it was expanded from; it is asked once, when the node first shows.
    """

    def __init__(self, prompt_id: str, emit: EventSink, origin: Callable[[str], tuple[str, str | None, str]]) -> None:
        self.prompt_id = prompt_id
        self.emit = emit
        self.origin = origin
        self.nodes: dict[str, dict[str, Any]] = {}
        self.payload: dict[str, Any] = {"prompt_id": prompt_id, "nodes": self.nodes}

    def track(self, node_id: str, value: float | None, maximum: float | None, state: str = "running") -> None:
        """Record a node's progress state and send ``progress_state`` (ComfyUI's payload).

        ``None`` keeps the recorded maximum: a finished node shows ``value == max``."""
        entry = self.nodes.get(node_id)
        if entry is None:
            entry = self.nodes[node_id] = self.entry(node_id)
        entry["state"] = state
        if maximum is not None:
            entry["max"] = maximum
        entry["value"] = entry["max"] if value is None else value
        self.emit("progress_state", self.payload)

    def finished(self, node_id: str) -> None:
        self.track(node_id, None, None, "finished")

    def entry(self, node_id: str) -> dict[str, Any]:
        display, parent, real = self.origin(node_id)
        return {
            "value": 0.0,
            "max": 1.0,
            "state": "running",
            "node_id": node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": display,
            "parent_node_id": parent,
            "real_node_id": real,
        }
