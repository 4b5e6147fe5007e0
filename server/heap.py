"""Keeping the garbage collector off what start-up built.

A server process holds tens of thousands of objects that live as long as it does: modules,
classes, node definitions, the registry, loaded packs. CPython's collector walks all of them
on every full collection, and a run of a 1000-node prompt allocates enough (parsed JSON, node
outputs, events, history entries) to trigger one every few prompts. ``gc.freeze()`` moves what
exists at the end of start-up into a permanent generation the collector skips, so collections
only walk what the server made since. Measured on the CI machine kind (the collector's own
time, 20 prompts through the API): 1000-node chains 17 -> 12.5 ms per prompt, 1000-wide graphs
(2001 nodes) 65 -> 43 ms per prompt.

No ``gc.collect()`` first: at that point it found nothing to free and took ~45 ms of start-up.
"""

from __future__ import annotations

import gc


def settle_after_startup() -> None:
    """Freeze everything alive now: the collector no longer walks it."""
    gc.freeze()
