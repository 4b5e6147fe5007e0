"""The prompt queue, behind one small interface.

:class:`PromptQueue` is everything the routes and the worker use; :class:`MemoryPromptQueue`
implements it in memory. A durable implementation (SQLite) can replace it without touching
callers, since none of them reach past these methods.
"""

from __future__ import annotations

import heapq
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True)
class QueueItem:
    number: int
    prompt_id: str = field(compare=False)
    prompt: dict[str, Any] = field(compare=False)
    extra_data: dict[str, Any] = field(compare=False, default_factory=dict)
    outputs: list[str] = field(compare=False, default_factory=list)
    client_id: str | None = field(compare=False, default=None)
    created: float = field(compare=False, default_factory=time.time)
    #: the validator's dependency order, reused by the executor (not part of the wire format)
    order: list[str] | None = field(compare=False, default=None, repr=False)

    def as_comfy(self) -> list[Any]:
        """ComfyUI's queue tuple: ``[number, prompt_id, prompt, extra_data, outputs]``."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue(ABC):
    """Prompts waiting to run and the one running now."""

    @abstractmethod
    def next_number(self, front: bool = False) -> int:
        """A queue number: increasing, or below every pending one when ``front``."""

    @abstractmethod
    def put(self, item: QueueItem) -> None: ...

    @abstractmethod
    def get(self, timeout: float | None = None) -> QueueItem | None:
        """Block until a prompt is pending, mark it running and return it (``None`` on timeout)."""

    @abstractmethod
    def task_done(self, prompt_id: str) -> None: ...

    @abstractmethod
    def running(self) -> list[QueueItem]: ...

    @abstractmethod
    def pending(self) -> list[QueueItem]:
        """Pending prompts in the order they will run."""

    @abstractmethod
    def delete(self, prompt_ids: list[str]) -> int:
        """Remove pending prompts; returns how many were removed."""

    @abstractmethod
    def clear(self) -> int: ...

    def remaining(self) -> int:
        return len(self.pending()) + len(self.running())

    def contains(self, prompt_id: str) -> bool:
        """True when ``prompt_id`` is pending or running (prompt ids must be unique)."""
        return any(i.prompt_id == prompt_id for i in (*self.running(), *self.pending()))

    @abstractmethod
    def close(self) -> None:
        """Wake any waiting ``get`` so the worker can stop."""


class MemoryPromptQueue(PromptQueue):
    def __init__(self) -> None:
        self._heap: list[QueueItem] = []
        self._running: dict[str, QueueItem] = {}
        self._cond = threading.Condition()
        self._counter = 0
        self._front = 0
        self._closed = False

    def next_number(self, front: bool = False) -> int:
        with self._cond:
            if front:
                self._front -= 1
                return self._front
            self._counter += 1
            return self._counter

    def put(self, item: QueueItem) -> None:
        with self._cond:
            heapq.heappush(self._heap, item)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> QueueItem | None:
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._heap and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._closed:
                return None
            item = heapq.heappop(self._heap)
            self._running[item.prompt_id] = item
            return item

    def task_done(self, prompt_id: str) -> None:
        with self._cond:
            self._running.pop(prompt_id, None)

    def running(self) -> list[QueueItem]:
        with self._cond:
            return list(self._running.values())

    def pending(self) -> list[QueueItem]:
        with self._cond:
            return sorted(self._heap)

    def delete(self, prompt_ids: list[str]) -> int:
        wanted = set(prompt_ids)
        with self._cond:
            before = len(self._heap)
            self._heap = [i for i in self._heap if i.prompt_id not in wanted]
            heapq.heapify(self._heap)
            return before - len(self._heap)

    def clear(self) -> int:
        with self._cond:
            count = len(self._heap)
            self._heap.clear()
            return count

    def remaining(self) -> int:
        with self._cond:
            return len(self._heap) + len(self._running)

    def contains(self, prompt_id: str) -> bool:
        with self._cond:  # no sort: pending() sorts the heap, this runs on every POST /prompt
            return prompt_id in self._running or any(i.prompt_id == prompt_id for i in self._heap)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
