import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tests.support.nodes_for_tests import CALLS, make_registry  # noqa: E402
from tests.support.server import LiveServer, serve  # noqa: E402

#: shared fixtures: the tiny SD1 UNet and conditionings (tiny_model, tiny_positive, tiny_negative)
#: and the built-in shapes model drawn and judged (shapes, shapes_cfg)
pytest_plugins = ["tests.support.tiny_unet", "tests.support.shapes_drawing"]


@pytest.fixture
def calls() -> Iterator[list]:
    CALLS.clear()
    yield CALLS
    CALLS.clear()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The real server on a free port, built-in nodes plus the test nodes."""
    yield from serve(tmp_path, make_registry())


def pytest_terminal_summary(terminalreporter, config) -> None:
    """Repeat pytest-randomly's seed at the end, where a failing run's reader looks (and under -q)."""
    if config.pluginmanager.hasplugin("randomly") and config.getoption("randomly_reorganize", False):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(f"test order: rerun it with -p randomly --randomly-seed={seed}")
