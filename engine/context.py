"""What a running node may ask of the engine: progress, previews, interruption checks.

The current context lives in a :mod:`contextvars` variable, so it follows a node into the
coroutines it awaits and is reachable from helper code (a sampler callback, a ComfyUI-style
``ProgressBar``) that was never handed the context explicitly.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EventSink = Callable[[str, dict[str, Any]], None]


class Interrupted(Exception):
    """Raised inside a node when the user interrupted the run."""


class InterruptFlag:
    """A resettable flag shared by the server (which sets it) and the running prompt."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()


@dataclass
class ExecutionContext:
    prompt_id: str
    node_id: str
    display_node: str
    class_type: str
    emit: EventSink
    interrupt: InterruptFlag
    extra: dict[str, Any] = field(default_factory=dict)
    #: the run's progress bookkeeping: ``(node_id, value, maximum)``; feeds the
    #: ``progress_state`` events. ``None`` outside an engine run.
    track: Callable[[str, float, float], None] | None = None

    def check_interrupted(self) -> None:
        """Raise :class:`Interrupted` if the user asked to stop; call between steps."""
        if self.interrupt.is_set():
            raise Interrupted()

    def progress(self, value: float, maximum: float) -> None:
        """Report progress of the running node; also a natural interruption point."""
        self.emit(
            "progress",
            {"value": value, "max": maximum, "prompt_id": self.prompt_id, "node": self.node_id},
        )
        if self.track is not None:
            self.track(self.node_id, value, maximum)
        self.check_interrupted()

    def set_progress(self, value: float, maximum: float, node_id: str | None = None) -> None:
        """Update the node's entry in the ``progress_state`` events only (no ``progress`` event).

        This is ComfyUI's ``api.execution.set_progress``: the newer per-node progress that
        its canvas draws on each node, without the legacy single progress bar.
        """
        if self.track is not None:
            self.track(node_id or self.node_id, value, maximum)

    def preview(self, data: bytes, image_format: str = "JPEG") -> None:
        """Send an encoded preview image (JPEG or PNG bytes) to the client as a binary frame."""
        self.emit(
            "preview",
            {
                "node": self.node_id,
                "display_node": self.display_node,
                "prompt_id": self.prompt_id,
                "format": image_format.upper(),
                "data": data,
            },
        )

    def send(self, event: str, data: dict[str, Any]) -> None:
        """Send a custom event to the client that queued the prompt."""
        self.emit(event, data)


_current: contextvars.ContextVar[ExecutionContext | None] = contextvars.ContextVar(
    "weft_execution_context", default=None
)


def current_context() -> ExecutionContext | None:
    """The context of the node running in this thread or task, if any."""
    return _current.get()


def set_current(ctx: ExecutionContext | None) -> contextvars.Token:
    return _current.set(ctx)


def reset_current(token: contextvars.Token) -> None:
    _current.reset(token)
