"""Headless Chromium on a thread of its own, shared by every canvas test of a session.

Playwright's sync API marks its event loop as running on the thread that starts it, for as
long as Playwright lives. Started on pytest's thread by a session fixture, that loop is still
"running" when a later asyncio test asks for a loop of its own, and every such test fails
("Runner.run() cannot be called from a running event loop"), whatever order the tests run in.
So Playwright lives on one worker thread, and everything that touches it (fixture set-up and
tear-down, and the bodies of the tests that use it) is handed to that thread: pytest's thread
never sees Playwright's loop, and Chromium still starts once per session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class BrowserThread:
    """A launched Chromium and the one thread allowed to drive it."""

    def __init__(self, executable: str, args: Sequence[str]) -> None:
        # one worker, kept for the executor's life: Playwright's objects belong to that thread
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weft-playwright")
        self._playwright: Any = None
        try:
            self.browser: Any = self.call(self._launch, executable, list(args))
        except BaseException:
            self._executor.shutdown(wait=True)
            raise

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` run on the browser's thread; its result, or its exception."""
        __tracebackhide__ = True
        return self._executor.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        try:
            self.call(self._stop)
        finally:
            self._executor.shutdown(wait=True)

    def _launch(self, executable: str, args: list[str]) -> Any:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            return self._playwright.chromium.launch(executable_path=executable, args=args, headless=True)
        except BaseException:
            self._stop()
            raise

    def _stop(self) -> None:
        try:
            if getattr(self, "browser", None) is not None:
                self.browser.close()
        finally:
            if self._playwright is not None:
                self._playwright.stop()
                self._playwright = None
