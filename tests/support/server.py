"""Start the real Weft server on a free loopback port, in a background thread.

Tests talk to it over real sockets (HTTP and WebSocket) exactly as a client would.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from nodes.registry import NodeRegistry, builtin_registry
from server.app import PROMPT_SERVER_KEY, create_app
from server.config import ServerConfig
from server.prompt_server import PromptServer


@dataclass
class LiveServer:
    url: str
    port: int
    base_dir: Path
    server: PromptServer
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _runner: web.AppRunner = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    # -- tiny synchronous client (for tests that need no WebSocket) ---------------------
    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                payload = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            payload, status = exc.read(), exc.code
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload

    def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return self.request("POST", path, body, **kw)

    def queue_prompt(self, prompt: dict[str, Any], client_id: str | None = None, **extra: Any) -> str:
        status, body = self.post("/prompt", {"prompt": prompt, "client_id": client_id, **extra})
        assert status == 200, body
        return body["prompt_id"]

    def wait_history(self, prompt_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.get(f"/history/{prompt_id}")
            if status == 200 and body:
                return body[prompt_id]
            time.sleep(0.01)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


def start_server(base_dir: Path, registry: NodeRegistry | None = None, **config: Any) -> LiveServer:
    """Start a server with ``registry`` (built-ins by default) and ServerConfig overrides."""
    load_plugins = bool(config.pop("load_plugins", False))
    cfg = ServerConfig(base_directory=base_dir, **config)
    app = create_app(cfg, registry if registry is not None else builtin_registry(), load_plugins=load_plugins)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
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
        except BaseException as exc:  # surface start-up errors in the test
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=main, name="weft-test-server", daemon=True)
    thread.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    return LiveServer(f"http://127.0.0.1:{port}", port, base_dir, app[PROMPT_SERVER_KEY], loop, runner, thread)


def serve(base_dir: Path, registry: NodeRegistry | None = None, **config: Any) -> Iterator[LiveServer]:
    """Generator for fixtures: ``yield from serve(tmp_path)``."""
    live = start_server(base_dir, registry, **config)
    try:
        yield live
    finally:
        live.stop()
