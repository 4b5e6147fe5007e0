"""Finished prompts in ComfyUI's history shape, newest last, bounded in count."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class History:
    def __init__(self, max_items: int = 10000) -> None:
        self.max_items = max_items
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, prompt_id: str, entry: dict[str, Any]) -> None:
        with self._lock:
            self._items[prompt_id] = entry
            self._items.move_to_end(prompt_id)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def get(self, prompt_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(prompt_id)

    def items(self, max_items: int | None = None, offset: int = 0) -> dict[str, dict[str, Any]]:
        """Oldest first, like ComfyUI; ``max_items`` keeps the newest ones."""
        with self._lock:
            keys = list(self._items)
        if offset:
            keys = keys[: max(len(keys) - offset, 0)]
        if max_items is not None:
            keys = keys[-max_items:] if max_items > 0 else []
        with self._lock:
            return {k: self._items[k] for k in keys if k in self._items}

    def delete(self, prompt_ids: list[str]) -> None:
        with self._lock:
            for prompt_id in prompt_ids:
                self._items.pop(prompt_id, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
