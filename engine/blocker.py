"""A value that stops whatever depends on it without failing the run."""

from __future__ import annotations


class ExecutionBlocker:
    """Return this as an output to block downstream nodes (a switch that chose "off").

    A node that receives a blocker on any input is skipped and passes the blocker on through
    all of its outputs. With a ``message`` the block is recorded in the run's history as a
    warning; without one it is silent.
    """

    __slots__ = ("message",)

    def __init__(self, message: str | None = None) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"
