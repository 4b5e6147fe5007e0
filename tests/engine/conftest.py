from collections.abc import Iterator

import pytest

from tests.engine.tiny_nodes import CALLS


@pytest.fixture(autouse=True)
def calls() -> Iterator[list]:
    """What the recording tiny nodes were called with, in this test only."""
    CALLS.clear()
    yield CALLS
    CALLS.clear()
