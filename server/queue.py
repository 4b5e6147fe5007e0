"""The prompt queue, behind one small interface.

:class:`PromptQueue` is everything the routes and the worker use; :class:`MemoryPromptQueue`
implements it in memory, bounded in count and bytes (a full queue refuses with
:class:`QueueFull`, which POST /prompt answers with a 429). :class:`DurablePromptQueue` writes
it through to the SQLite store (:mod:`server.store`) so a killed server restarts with its
queue; callers never reach past these methods.
"""

from __future__ import annotations

import heapq
import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import jsonio

if TYPE_CHECKING:
    from .store import StateStore


#: a prompt with more nodes than this is queued from a thread (POST /prompt's offload), so its
#: JSON is written by :func:`jsonio.dumps_chunked`, which lets the event loop in between subtrees;
#: a smaller one is written on the loop by the C encoder in one call, about twice as fast
CHUNKED_NODES = 2000


def _dumps(value: Any, chunked: bool) -> str:
    return jsonio.dumps_chunked(value) if chunked else jsonio.dumps(value)


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
    #: the prompt's JSON once written (for the queue's bounds or file): the history entry reuses it
    prompt_json: str | None = field(compare=False, default=None, repr=False)

    def as_comfy(self) -> list[Any]:
        """ComfyUI's queue tuple: ``[number, prompt_id, prompt, extra_data, outputs]``."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]

    def encoded_prompt(self) -> str:
        """The prompt's JSON, written once (a 1000-node prompt takes milliseconds)."""
        if self.prompt_json is None:
            self.prompt_json = _dumps(self.prompt, len(self.prompt) > CHUNKED_NODES)
        return self.prompt_json

    def as_comfy_json(self) -> str:
        """:meth:`as_comfy` as JSON, around the prompt's JSON written once."""
        head = jsonio.dumps([self.number, self.prompt_id])[:-1]
        return f"{head}, {self.encoded_prompt()}, {jsonio.dumps(self.extra_data)}, {jsonio.dumps(self.outputs)}]"

    def to_json(self) -> str:
        """Everything needed to run it again after a restart (the validator's order included)."""
        rest = _dumps(
            {
                "number": self.number,
                "prompt_id": self.prompt_id,
                "extra_data": self.extra_data,
                "outputs": self.outputs,
                "client_id": self.client_id,
                "created": self.created,
                "order": self.order,
            },
            len(self.prompt) > CHUNKED_NODES,
        )
        return f'{{"prompt": {self.encoded_prompt()}, {rest[1:]}'

    @classmethod
    def from_json(cls, text: str) -> QueueItem:
        data = json.loads(text)
        return cls(
            data["number"],
            data["prompt_id"],
            data["prompt"],
            data.get("extra_data") or {},
            data.get("outputs") or [],
            data.get("client_id"),
            data.get("created") or time.time(),
            data.get("order"),
        )


class PromptIdInUse(ValueError):
    """A prompt with this id is queued or running already."""


class QueueFull(Exception):
    """POST /prompt's answer when the queue is at a bound: which one, and its value."""

    def __init__(self, flag: str, limit: int, message: str) -> None:
        super().__init__(message)
        self.flag, self.limit, self.message = flag, limit, message


class PromptQueue(ABC):
    """Prompts waiting to run and the one running now."""

    #: True when ``put``/``delete``/``clear`` write to disk: callers on the event loop move them off it
    durable = False

    def check_room(self, size: int = 0) -> None:  # noqa: B027 (optional: an unbounded queue has nothing to check)
        """Raise :class:`QueueFull` when a prompt of ``size`` bytes would not fit (0: count only)."""

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

    # -- for a pool of workers (server/worker_pool.py); the single worker uses ``get`` only ------
    @abstractmethod
    def get_matching(
        self, choose: Callable[[list[QueueItem]], QueueItem | None], timeout: float | None = None, window: int = 64
    ) -> QueueItem | None:
        """Like :meth:`get`, but the caller picks among the first ``window`` pending prompts:
        ``choose(head)`` returns one of them or ``None`` (nothing fits now: wait for a change)."""

    @abstractmethod
    def requeue(self, item: QueueItem) -> bool:
        """Put a running prompt back as pending, with its number (its worker died); False when
        it is not running."""

    def wake(self) -> None:  # noqa: B027 (optional: only a queue that feeds a pool has waiters to wake)
        """Make a waiting :meth:`get_matching` look again (a worker became free)."""


class MemoryPromptQueue(PromptQueue):
    def __init__(self, max_items: int = 0, max_bytes: int = 0) -> None:
        """``max_items`` pending prompts of at most ``max_bytes`` in all (as JSON); 0: no bound."""
        self._heap: list[QueueItem] = []
        self._running: dict[str, QueueItem] = {}
        self._cond = threading.Condition()
        self._counter = 0
        self._front = 0
        self._closed = False
        self.max_items = max_items
        self.max_bytes = max_bytes
        #: pending prompts' ids and sizes (0 without a byte bound): the ids checked on every POST /prompt
        self._sizes: dict[str, int] = {}
        self._bytes = 0

    def check_room(self, size: int = 0) -> None:
        with self._cond:
            self._check_room(size)

    def _check_room(self, size: int) -> None:
        if self.max_items and len(self._heap) >= self.max_items:
            raise QueueFull(
                "--max-queue-items",
                self.max_items,
                f"the queue is full: {len(self._heap)} prompts are waiting, the most this server "
                f"keeps (--max-queue-items {self.max_items}); try again when some have run",
            )
        if self.max_bytes and self._bytes + size > self.max_bytes:
            mb = self.max_bytes / (1 << 20)
            if not self._heap:
                raise QueueFull(
                    "--max-queue-size",
                    self.max_bytes,
                    f"this prompt is {size / (1 << 20):.1f} MB, more than the whole queue may hold "
                    f"(--max-queue-size {mb:g} MB)",
                )
            raise QueueFull(
                "--max-queue-size",
                self.max_bytes,
                f"the queue is full: waiting prompts take {self._bytes / (1 << 20):.1f} MB of the "
                f"{mb:g} MB it may hold (--max-queue-size); try again when some have run",
            )

    def _encoded(self, item: QueueItem) -> str | None:
        """The item as stored, when something needs it (a byte bound here; the store below)."""
        return item.to_json() if self.max_bytes else None

    def _stored(self, item: QueueItem, text: str | None, size: int) -> None:
        """Write ``item`` through (the durable queue); called under the queue's lock."""

    def _unstored(self, prompt_ids: list[str]) -> None:
        """Forget finished or deleted prompts in the store; called under the queue's lock."""

    def _push(self, item: QueueItem, size: int) -> None:
        heapq.heappush(self._heap, item)
        self._sizes[item.prompt_id] = size
        self._bytes += size

    def _forget_size(self, prompt_id: str) -> None:
        self._bytes -= self._sizes.pop(prompt_id, 0)

    def next_number(self, front: bool = False) -> int:
        with self._cond:
            if front:
                self._front -= 1
                return self._front
            self._counter += 1
            return self._counter

    def put(self, item: QueueItem) -> None:
        """Queue ``item``, or raise :class:`QueueFull`, or :class:`PromptIdInUse` when its id is
        queued or running already (checked here, atomically, since a durable put runs on a thread
        while the route's own check may race). Durable: written before it is queued."""
        text = self._encoded(item)  # outside the lock: the worker must not wait for a big prompt's JSON
        size = len(text.encode()) if text is not None and self.max_bytes else 0
        with self._cond:
            if item.prompt_id in self._sizes or item.prompt_id in self._running:
                raise PromptIdInUse(item.prompt_id)
            self._check_room(size)
            self._stored(item, text, size)
            self._push(item, size)
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
            self._forget_size(item.prompt_id)
            self._running[item.prompt_id] = item
            self._started(item)
            return item

    def _started(self, item: QueueItem) -> None:
        """Record that ``item`` runs now (the durable queue); called under the queue's lock."""

    def task_done(self, prompt_id: str) -> None:
        with self._cond:
            self._running.pop(prompt_id, None)
            self._unstored([prompt_id])

    def running(self) -> list[QueueItem]:
        with self._cond:
            return list(self._running.values())

    def pending(self) -> list[QueueItem]:
        with self._cond:
            return sorted(self._heap)

    def delete(self, prompt_ids: list[str]) -> int:
        wanted = set(prompt_ids)
        with self._cond:
            removed = [i.prompt_id for i in self._heap if i.prompt_id in wanted]
            if not removed:
                return 0
            self._heap = [i for i in self._heap if i.prompt_id not in wanted]
            heapq.heapify(self._heap)
            for prompt_id in removed:
                self._forget_size(prompt_id)
            self._unstored(removed)
            return len(removed)

    def clear(self) -> int:
        with self._cond:
            removed = [i.prompt_id for i in self._heap]
            self._heap.clear()
            self._sizes.clear()
            self._bytes = 0
            if removed:
                self._unstored(removed)
            return len(removed)

    def remaining(self) -> int:
        with self._cond:
            return len(self._heap) + len(self._running)

    def contains(self, prompt_id: str) -> bool:
        with self._cond:  # a look-up, no sort: this runs on every POST /prompt
            return prompt_id in self._running or prompt_id in self._sizes

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get_matching(
        self, choose: Callable[[list[QueueItem]], QueueItem | None], timeout: float | None = None, window: int = 64
    ) -> QueueItem | None:
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._closed:
                chosen = choose(heapq.nsmallest(window, self._heap)) if self._heap else None
                if chosen is not None:
                    index = next(i for i, pending in enumerate(self._heap) if pending is chosen)
                    self._heap[index] = self._heap[-1]
                    self._heap.pop()
                    heapq.heapify(self._heap)
                    self._forget_size(chosen.prompt_id)
                    self._running[chosen.prompt_id] = chosen
                    self._started(chosen)
                    return chosen
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return None

    def requeue(self, item: QueueItem) -> bool:
        text = self._encoded(item)
        size = len(text.encode()) if text is not None and self.max_bytes else 0
        with self._cond:
            if self._running.pop(item.prompt_id, None) is None:
                return False
            self._requeued(item)
            self._push(item, size)
            self._cond.notify_all()
            return True

    def _requeued(self, item: QueueItem) -> None:
        """Record that ``item`` waits again (the durable queue); called under the queue's lock."""

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class DurablePromptQueue(MemoryPromptQueue):
    """:class:`MemoryPromptQueue` written through to SQLite: a row when a prompt is queued, a flag
    when it starts, a delete when it is finished (after its history entry) or removed."""

    durable = True

    def __init__(self, store: StateStore, max_items: int = 0, max_bytes: int = 0) -> None:
        super().__init__(max_items, max_bytes)
        self.store = store

    def restore(self, *, requeue_running: bool) -> list[tuple[QueueItem, int | None]]:
        """Load what a previous run left: pending prompts queue again in their order, numbers go
        on from the last one handed out. Returns the prompts that were running, with when they
        started, for the caller to record as failed; with ``requeue_running`` they queue again
        instead (same number) and none is returned."""
        counter, front = self.store.counters()
        interrupted: list[tuple[QueueItem, int | None]] = []
        broken: list[str] = []
        with self._cond:
            self._counter, self._front = max(self._counter, counter), min(self._front, front)
            for prompt_id, running, started, text in self.store.queue_rows():
                try:
                    item = QueueItem.from_json(text)
                except (ValueError, KeyError, TypeError):
                    broken.append(prompt_id)
                    continue
                if running and not requeue_running:
                    interrupted.append((item, started))
                    continue
                if running:
                    self.store.queue_requeue(prompt_id)
                self._push(item, len(text.encode()) if self.max_bytes else 0)
        if broken:
            self.store.queue_delete(broken)
        return interrupted

    def _encoded(self, item: QueueItem) -> str | None:
        return item.to_json()

    def _stored(self, item: QueueItem, text: str | None, size: int) -> None:
        assert text is not None
        self.store.queue_add(item.prompt_id, item.number, size, text, self._counter, self._front)

    def _started(self, item: QueueItem) -> None:
        self.store.queue_started(item.prompt_id, int(time.time() * 1000))

    def _requeued(self, item: QueueItem) -> None:
        self.store.queue_requeue(item.prompt_id)

    def _unstored(self, prompt_ids: list[str]) -> None:
        self.store.queue_delete(prompt_ids)
