"""Fixtures for the canvas tests: the real server (built-in + test nodes) and headless Chromium.

Chromium is shared by the whole session and driven from a thread of its own (BrowserThread), so
the asyncio tests that run between canvas tests, in any order, find no event loop running.
"""

from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser_thread import BrowserThread
from tests.support.nodes_for_tests import make_registry
from tests.support.server import LiveServer, start_server
from tests.web.nodes import WEB_TEST_NODES

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("WEFT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def web_registry():
    registry = make_registry()
    registry.register_all(WEB_TEST_NODES, pack="tests")
    return registry


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    base = tmp_path_factory.mktemp("weft-web")
    live = start_server(base, web_registry())
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="session")
def browser_thread() -> Iterator[BrowserThread]:
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set WEFT_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a missing browser must not pass as skipped
        pytest.skip(message)
    thread = BrowserThread(CHROMIUM, CHROMIUM_ARGS)
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture(scope="session")
def browser(browser_thread: BrowserThread) -> object:
    """The shared Chromium; usable only on its own thread, where the tests that ask for it run."""
    return browser_thread.browser


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run the body of a test that drives the browser on the browser's thread (see BrowserThread)."""
    if "browser_thread" not in pyfuncitem.fixturenames:
        return None
    test = pyfuncitem.obj
    arguments = {name: pyfuncitem.funcargs[name] for name in inspect.signature(test).parameters}
    pyfuncitem.funcargs["browser_thread"].call(test, **arguments)
    return True


@pytest.fixture
def context(browser, browser_thread: BrowserThread):
    ctx = browser_thread.call(browser.new_context, viewport={"width": 1400, "height": 860}, accept_downloads=True)
    try:
        yield ctx
    finally:
        browser_thread.call(ctx.close)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture
def page(request, context, web_server, browser_thread: BrowserThread):
    errors: list[str] = []
    page = browser_thread.call(_open_canvas, context, web_server.url, errors)
    yield page
    if getattr(request.node, "call_failed", False):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser_thread.call(page.screenshot, path=str(SCREENSHOTS / f"FAILED-{request.node.name}.png"))
    assert not errors, f"uncaught errors in the page: {errors}"


def _open_canvas(context, url: str, errors: list[str]):
    page = context.new_page()
    # listening from the start turns on file-chooser interception before any click (turning
    # it on inside expect_file_chooser races with the click that opens the dialog)
    page.on("filechooser", lambda chooser: None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=15000)
    page.errors = errors  # type: ignore[attr-defined]
    page.on(
        "console",
        lambda msg: (
            msg.type == "error" and "Failed to load resource" not in msg.text and errors.append(f"console: {msg.text}")
        ),
    )
    return page


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
