"""Start the real Weft server on a free loopback port, in a background thread.

Tests talk to it over real sockets (HTTP and WebSocket) exactly as a client would.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nodes.registry import NodeRegistry, builtin_registry
from server.app import create_app
from server.config import ServerConfig
from server.embedded import EmbeddedServer, start_in_thread


class LiveServer:
    """An embedded server plus a tiny synchronous client for tests."""

    def __init__(self, embedded: EmbeddedServer, base_dir: Path) -> None:
        self.embedded = embedded
        self.url, self.port, self.server = embedded.url, embedded.port, embedded.server
        self.runtime = embedded.server.runtime
        self.ws_url = embedded.ws_url
        self.base_dir = base_dir

    # -- tiny synchronous client (for tests that need no WebSocket) ---------------------
    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
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
        self.embedded.stop()


def start_server(base_dir: Path, registry: NodeRegistry | None = None, **config: Any) -> LiveServer:
    """Start a server with ``registry`` (built-ins by default) and ServerConfig overrides."""
    load_plugins = bool(config.pop("load_plugins", False))
    cfg = ServerConfig(base_directory=base_dir, **config)
    app = create_app(cfg, registry if registry is not None else builtin_registry(), load_plugins=load_plugins)
    return LiveServer(start_in_thread(app), base_dir)


def serve(base_dir: Path, registry: NodeRegistry | None = None, **config: Any) -> Iterator[LiveServer]:
    """Generator for fixtures: ``yield from serve(tmp_path)``."""
    live = start_server(base_dir, registry, **config)
    try:
        yield live
    finally:
        live.stop()


def serve_restoring_paths(base_dir: Path, **config: Any) -> Iterator[LiveServer]:
    """``serve`` for module-scoped fixtures. A server keeps its paths in its own runtime and
    removes it from the process when it stops, so nothing else needs putting back."""
    yield from serve(base_dir, **config)
