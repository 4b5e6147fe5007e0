"""One torch thread for the inversion tests: on a shared two-core machine a second OpenMP thread
spinning against other processes makes the UNet calls 5-40x slower (measured on the shapes model:
a batch of 20 takes 0.56 s with one thread, 3 s with two under load)."""

from __future__ import annotations

#: autouse: one torch thread for every test here
from tests.support.torch_threads import one_torch_thread  # noqa: F401
