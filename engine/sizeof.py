"""Cheap estimates of how much memory a cached output holds.

Exactness is not the point: the cache needs to tell a 4 MB latent from a 40 byte string
without importing torch or numpy. Anything with ``nbytes`` (numpy arrays, torch tensors)
reports it; objects may define ``__weft_cache_size__`` (models report a small number
because the model manager, not the output cache, owns their memory).
"""

from __future__ import annotations

import sys
from typing import Any

_MAX_DEPTH = 6


def estimate_size(value: Any, _depth: int = 0) -> int:
    kind = type(value)
    # the built-in containers and strings first, by exact type: every cached output is a list
    # of lists, and a failed ``getattr`` costs more than the whole answer for a string
    if kind is str or kind is bytes:
        return len(value) + 49
    if (kind is list or kind is tuple) and _depth < _MAX_DEPTH:
        return 56 + sum([estimate_size(v, _depth + 1) for v in value])
    custom = getattr(kind, "__weft_cache_size__", None)
    if custom is not None:
        return int(custom(value))
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, (str, bytes, bytearray)):
        return len(value) + 49
    if _depth >= _MAX_DEPTH:
        return 64
    if isinstance(value, dict):
        return 64 + sum(estimate_size(v, _depth + 1) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return 56 + sum(estimate_size(v, _depth + 1) for v in value)
    try:
        return sys.getsizeof(value)
    except TypeError:
        return 64
