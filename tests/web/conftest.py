"""Fixtures for the canvas tests: the real server (built-in + test nodes) and headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes_for_tests import make_registry
from tests.support.server import LiveServer, start_server
from tests.web.nodes import WEB_TEST_NODES

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("WEFT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def web_registry():
    registry = make_registry()
    registry.register_all(WEB_TEST_NODES, pack="tests")
    return registry


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    import nodes.paths as paths_module

    previous = paths_module._paths
    base = tmp_path_factory.mktemp("weft-web")
    live = start_server(base, web_registry())
    try:
        yield live
    finally:
        live.stop()
        paths_module._paths = previous


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright import sync_api

    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set WEFT_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a missing browser must not pass as skipped
        pytest.skip(message)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 860}, accept_downloads=True)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture
def page(request, context, web_server):
    page = context.new_page()
    # listening from the start turns on file-chooser interception before any click (turning
    # it on inside expect_file_chooser races with the click that opens the dialog)
    page.on("filechooser", lambda chooser: None)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(web_server.url + "/")
    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=15000)
    page.errors = errors  # type: ignore[attr-defined]
    page.on("console", lambda msg: msg.type == "error" and "Failed to load resource" not in msg.text
            and errors.append(f"console: {msg.text}"))
    yield page
    if getattr(request.node, "call_failed", False):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"FAILED-{request.node.name}.png"))
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
