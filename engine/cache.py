"""Node outputs cached by structural signature, bounded by entry count and memory.

The key is the node's signature (see :mod:`engine.signature`), never its id, so an
identical sub-graph in a different prompt hits the same entries. Eviction is least recently
used; a look-up is a dict access plus an ``OrderedDict.move_to_end``.

Not thread-safe, and without a lock on purpose (a look-up per node is the hot path): one
thread uses a cache at a time. The server's worker owns it; POST /free asks the worker to
clear it between prompts (``server.worker.Worker.request_free``) instead of clearing it from
the event loop under a running prompt.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .sizeof import estimate_size


@dataclass(slots=True)
class CacheEntry:
    outputs: list[list[Any]]
    ui: dict[str, Any] | None
    size: int


class OutputCache:
    """LRU cache of node outputs.

    ``max_entries=None`` means no count limit; ``max_bytes=None`` means no memory limit.
    ``enabled=False`` (``--cache-none``) keeps nothing between runs.
    """

    def __init__(
        self, *, max_entries: int | None = None, max_bytes: int | None = 4 << 30, enabled: bool = True
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.enabled = enabled
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: bytes) -> bool:
        return key in self._entries

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def get(self, key: bytes) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: bytes, outputs: list[list[Any]], ui: dict[str, Any] | None) -> None:
        if not self.enabled:
            return
        size = estimate_size(outputs)
        if self.max_bytes is not None and size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._entries[key] = CacheEntry(outputs, ui, size)
        self._bytes += size
        self._evict()

    def _evict(self) -> None:
        while self._entries and (
            (self.max_entries is not None and len(self._entries) > self.max_entries)
            or (self.max_bytes is not None and self._bytes > self.max_bytes)
        ):
            _, entry = self._entries.popitem(last=False)
            self._bytes -= entry.size

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def stats(self) -> dict[str, int | None]:
        return {
            "entries": len(self._entries),
            "bytes": self._bytes,
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
        }
