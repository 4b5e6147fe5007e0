"""Finished prompts in ComfyUI's history shape, newest last, bounded in count and in bytes.

The entries live in memory (the fast path every route reads); with a store
(:mod:`server.store`) each one is also written when its prompt finishes, and a restarted
server reads them back. Those read back stay JSON text until a route asks for them: a server
with a big history starts without parsing all of it.

Pruning drops the oldest entries until both bounds hold, never the newest (the client waiting
for it reads it next), and never touches the files an entry names: outputs are the user's.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from . import jsonio
from .queue import CHUNKED_NODES

#: an entry with more outputs than this is written a subtree at a time, as a prompt with more
#: nodes than that is by the queue (see :meth:`History._encoded`)
CHUNKED_OUTPUTS = CHUNKED_NODES

if TYPE_CHECKING:
    from .store import StateStore


def _big(entry: dict[str, Any], with_prompt: bool) -> bool:
    """Whether an entry has more than :data:`CHUNKED_OUTPUTS` outputs (or, ``with_prompt``, its
    prompt more nodes than that: ComfyUI's ``[number, id, prompt, extra_data, outputs]``)."""
    outputs = entry.get("outputs")
    if isinstance(outputs, dict) and len(outputs) > CHUNKED_OUTPUTS:
        return True
    queued = entry.get("prompt")
    if with_prompt and isinstance(queued, (list, tuple)) and len(queued) > 2:
        return not isinstance(queued[2], dict) or len(queued[2]) > CHUNKED_OUTPUTS
    return False


class History:
    def __init__(self, max_items: int = 10000, max_bytes: int = 0, *, store: StateStore | None = None) -> None:
        """At most ``max_items`` entries of at most ``max_bytes`` in all (as JSON); 0: no bound."""
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.store = store
        #: an entry, or its JSON text while nobody has read it since the server started
        self._items: OrderedDict[str, dict[str, Any] | str] = OrderedDict()
        #: entries' sizes in bytes (only while a byte bound is set)
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        if store is not None:
            for prompt_id, size, text in store.history_rows():
                self._insert(prompt_id, text, size)
            pruned = self._prune()
            if pruned:
                store.history_delete(pruned)

    def _insert(self, prompt_id: str, entry: dict[str, Any] | str, size: int) -> None:
        self._items[prompt_id] = entry
        self._items.move_to_end(prompt_id)
        if self.max_bytes:
            self._bytes += size - self._sizes.get(prompt_id, 0)
            self._sizes[prompt_id] = size

    def _prune(self) -> list[str]:
        """Drop the oldest entries over a bound (never the newest); returns their ids."""
        pruned: list[str] = []
        while len(self._items) > 1 and (
            (self.max_items and len(self._items) > self.max_items) or (self.max_bytes and self._bytes > self.max_bytes)
        ):
            prompt_id, _ = self._items.popitem(last=False)
            self._bytes -= self._sizes.pop(prompt_id, 0)
            pruned.append(prompt_id)
        return pruned

    def add(self, prompt_id: str, entry: dict[str, Any], prompt_json: str | None = None) -> None:
        """Add (or replace) an entry. ``prompt_json``: ``entry["prompt"]`` as JSON already
        written (the queue wrote the prompt once), so it is not written again."""
        # serialised outside the lock, a subtree at a time: readers on the event loop keep going
        text = self._encoded(entry, prompt_json) if self.store is not None or self.max_bytes else None
        size = len(text.encode()) if text is not None else 0
        with self._lock:
            self._insert(prompt_id, entry, size)
            pruned = self._prune()
            if self.store is not None and text is not None:
                # under the lock: the file's order of entries is the memory's
                self.store.history_add(prompt_id, size, text, pruned)

    @staticmethod
    def _encoded(entry: dict[str, Any], prompt_json: str | None) -> str:
        # the C encoder in one call unless the entry is big: written a subtree at a time (which
        # lets the event loop in between) a 1000-output entry took twice as long, 2.8 ms
        if prompt_json is None or "prompt" not in entry:
            return jsonio.dumps_chunked(entry) if _big(entry, with_prompt=True) else jsonio.dumps(entry)
        others = {k: v for k, v in entry.items() if k != "prompt"}
        rest = jsonio.dumps_chunked(others) if _big(entry, with_prompt=False) else jsonio.dumps(others)
        return f'{{"prompt": {prompt_json}' + (f", {rest[1:]}" if rest != "{}" else "}")

    def _parsed(self, prompt_id: str) -> dict[str, Any] | None:
        """The entry, parsed now if it came from the store; the caller holds the lock."""
        entry = self._items.get(prompt_id)
        if isinstance(entry, str):
            entry = self._items[prompt_id] = json.loads(entry)
        return entry

    def get(self, prompt_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._parsed(prompt_id)

    def __contains__(self, prompt_id: str) -> bool:
        with self._lock:
            return prompt_id in self._items

    def items(self, max_items: int | None = None, offset: int = 0) -> dict[str, dict[str, Any]]:
        """Oldest first, like ComfyUI; ``max_items`` keeps the newest ones. Entries read back from
        the store are parsed here on first use: call it off the event loop."""
        with self._lock:
            keys = list(self._items)
        if offset:
            keys = keys[: max(len(keys) - offset, 0)]
        if max_items is not None:
            keys = keys[-max_items:] if max_items > 0 else []
        found: dict[str, dict[str, Any]] = {}
        for key in keys:
            with self._lock:  # one entry at a time: a POST /prompt waits for one parse at most
                entry = self._parsed(key)
            if entry is not None:
                found[key] = entry
        return found

    def delete(self, prompt_ids: list[str]) -> None:
        with self._lock:
            for prompt_id in prompt_ids:
                self._items.pop(prompt_id, None)
                self._bytes -= self._sizes.pop(prompt_id, 0)
            if self.store is not None:
                self.store.history_delete(prompt_ids)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._sizes.clear()
            self._bytes = 0
            if self.store is not None:
                self.store.history_clear()

    def __len__(self) -> int:
        return len(self._items)
