"""Fixtures for canvas tests whose server state must not leak into other tests (saved workflows,
settings): a fresh server and user folder per test. Import both names into the test module;
they override the session's ``web_server`` and the ``context`` that depends on it, so the
browser context closes (and its WebSocket with it) before the server stops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import LiveServer, start_server
from tests.web.conftest import web_registry


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(tmp_path, web_registry())
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def context(browser, browser_thread, web_server):
    ctx = browser_thread.call(browser.new_context, viewport={"width": 1400, "height": 860}, accept_downloads=True)
    try:
        yield ctx
    finally:
        browser_thread.call(ctx.close)
