"""The shapes tests draw with the built-in model and train a few steps: one torch thread each, as
the other model tests (``tests/support/torch_threads.py``), so two test workers do not fight
over two cores. The training script sets its own thread count and puts this one back."""

from __future__ import annotations

from tests.support.torch_threads import one_torch_thread  # noqa: F401  (autouse: one torch thread)
