"""Run the server on a background thread of this process, on a free loopback port.

For tests, benchmarks and notebooks: the server is the real one over real sockets; only
its event loop lives on another thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field

from aiohttp import web

from .keys import PROMPT_SERVER_KEY
from .prompt_server import PromptServer


@dataclass
class EmbeddedServer:
    url: str
    port: int
    server: PromptServer
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _runner: web.AppRunner = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


def start_in_thread(app: web.Application, host: str = "127.0.0.1") -> EmbeddedServer:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, sock).start())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=main, name="weft-embedded-server", daemon=True)
    thread.start()
    ready.wait(60)
    if failure:
        raise failure[0]
    return EmbeddedServer(f"http://{host}:{port}", port, app[PROMPT_SERVER_KEY], loop, runner, thread)
