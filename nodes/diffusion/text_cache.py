"""Text encodings kept across prompts, keyed by what the text encoder is given.

The engine's output cache skips a CLIPTextEncode whose inputs and upstream nodes are unchanged
since the last run. It cannot help when the same text reaches the same encoder another way: a
new graph, another node id, a loader that ran again and returned the same CLIP, a plugin calling
``clip.encode``, a second encode node with the same text. This cache sits under all of them, in
:func:`~.clip_text.encode_part`: one entry per encoder call, keyed by

* the encoder: its module handle (a token per handle object, so a reset manager or another
  model never matches), compute dtype and device, and which hidden layer is read (clip skip,
  the part's default layer, final norm, pooled output);
* the weight patches on it, by content where a patch can say (LoRA: the file read and the
  strength) and by identity otherwise; a patch that is neither hashable nor weak-referenceable
  turns the cache off for that call;
* the tokens: ids, weights and any embedding vectors (by a digest of their values).

So a LoRA or clip-skip change is a different key, and nothing needs invalidating. Entries are
float32 CPU tensors, handed out as copies (callers may modify what they get); the oldest go past
:data:`MAX_BYTES` or :data:`MAX_ENTRIES`. POST /free with ``unload_models`` empties it.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .clip_text import Chunk
    from .types import ClipPart

#: bytes of encodings kept (an SD1.5 prompt is 0.24 MB, an SDXL one 0.63 MB per 77 tokens)
MAX_BYTES = 64 << 20
MAX_ENTRIES = 512

_tokens: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_next_token = itertools.count(1)


class TextEncodingCache:
    """An LRU of ``key -> (cond, pooled)`` bounded in bytes and entries; thread-safe."""

    def __init__(self, max_bytes: int = MAX_BYTES, max_entries: int = MAX_ENTRIES) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self.nbytes = 0
        self._entries: OrderedDict[Hashable, tuple[Any, Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        cond, pooled, _ = entry
        return cond.clone(), (pooled.clone() if pooled is not None else None)

    def put(self, key: Hashable, cond: torch.Tensor, pooled: torch.Tensor | None) -> None:
        size = _nbytes(cond) + (_nbytes(pooled) if pooled is not None else 0)
        if size > self.max_bytes:
            return
        entry = (cond.clone(), pooled.clone() if pooled is not None else None, size)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.nbytes -= old[2]
            self._entries[key] = entry
            self.nbytes += size
            while self._entries and (self.nbytes > self.max_bytes or len(self._entries) > self.max_entries):
                _, dropped = self._entries.popitem(last=False)
                self.nbytes -= dropped[2]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0


_cache = TextEncodingCache()


def get_cache() -> TextEncodingCache:
    """The process's cache (the worker's, with ``--worker-mode process``)."""
    return _cache


def _free(unload_models: bool) -> None:
    if unload_models:
        _cache.clear()


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _identity(obj: Any) -> int | None:
    """A number that stands for ``obj`` while it lives and is never given to another object."""
    try:
        token = _tokens.get(obj)
        if token is None:
            token = next(_next_token)
            _tokens[obj] = token
        return token
    except TypeError:  # neither hashable nor weak-referenceable
        return None


def patch_key(patch: Any) -> Hashable | None:
    """A patch's content key (its ``cache_key()``), else its identity; ``None``: cannot key."""
    content = getattr(patch, "cache_key", None)
    key = content() if callable(content) else None
    if key is not None:
        return ("content", key)
    token = _identity(patch)
    return None if token is None else ("identity", token)


def _chunks_key(chunks: Sequence[Chunk]) -> tuple | None:
    import torch

    if any(not torch.is_tensor(vec) for c in chunks for _, vec in c.vectors):
        return None
    return tuple((c.ids, c.weights, tuple((pos, _digest(vec)) for pos, vec in c.vectors)) for c in chunks)


def _digest(vector: torch.Tensor) -> tuple:
    """An embedding vector by its values (the same file read twice gives new tensor objects)."""
    import torch

    data = vector.detach().to("cpu").contiguous().reshape(-1)
    raw = data.view(torch.uint8).numpy().tobytes()
    return (tuple(vector.shape), str(data.dtype), hashlib.blake2b(raw, digest_size=16).hexdigest())


def encoding_key(
    part: ClipPart, chunks: Sequence[Chunk], clip_skip: int | None, patches: Sequence[Any]
) -> Hashable | None:
    """The cache key of one encoder call (see the module docstring); ``None``: do not cache."""
    handle = _identity(part.handle)
    patch_keys = tuple(patch_key(p) for p in patches)
    tokens = _chunks_key(chunks)
    if handle is None or tokens is None or any(k is None for k in patch_keys):
        return None
    layer = clip_skip if clip_skip is not None else part.default_layer  # CLIPSetLastLayer(default) is no change
    layers = (layer, part.layer_offset, part.final_norm_on_hidden, part.pooled)
    where = (str(part.handle.compute_dtype), str(part.handle.device))
    return (handle, where, layers, patch_keys, tokens)


def _register() -> None:
    from nodes.memory import register_free_hook

    register_free_hook(_free)


_register()
