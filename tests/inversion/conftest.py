"""One torch thread for the inversion tests: on a shared two-core machine a second OpenMP thread
spinning against other processes makes the UNet calls 5-40x slower (measured on the shapes model:
a batch of 20 takes 0.56 s with one thread, 3 s with two under load)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
