"""The output cache: LRU by entries and by estimated bytes."""

from __future__ import annotations

from engine.cache import OutputCache
from engine.sizeof import estimate_size


class FakeArray:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


def test_lru_by_entry_count() -> None:
    cache = OutputCache(max_entries=2, max_bytes=None)
    cache.put(b"a", [["1"]], None)
    cache.put(b"b", [["2"]], None)
    assert cache.get(b"a") is not None  # a is now most recent
    cache.put(b"c", [["3"]], None)
    assert b"b" not in cache and b"a" in cache and b"c" in cache


def test_lru_by_memory_budget() -> None:
    cache = OutputCache(max_entries=None, max_bytes=1000)
    cache.put(b"big1", [[FakeArray(600)]], None)
    cache.put(b"big2", [[FakeArray(600)]], None)
    assert b"big1" not in cache and b"big2" in cache
    assert cache.bytes_used <= 1000
    cache.put(b"huge", [[FakeArray(5000)]], None)  # larger than the budget: not kept at all
    assert b"huge" not in cache and b"big2" in cache


def test_models_report_their_own_small_size() -> None:
    class Model:
        def __weft_cache_size__(self) -> int:
            return 128

        nbytes = 10**12

    assert estimate_size(Model()) == 128
    assert estimate_size({"samples": FakeArray(4096)}) >= 4096


def test_disabled_cache_keeps_nothing() -> None:
    cache = OutputCache(enabled=False)
    cache.put(b"a", [["1"]], None)
    assert len(cache) == 0 and cache.get(b"a") is None
