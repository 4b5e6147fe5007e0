"""One torch thread for the model tests (imported by the conftests of the packages that run models).

The tiny models gain nothing from a second thread, and on a shared two-core machine two OpenMP
threads spinning against other processes make the tests 2-3x slower. Session-scoped and
autouse where a conftest imports it; the previous count is restored afterwards.
"""

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
