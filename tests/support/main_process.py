"""``python main.py`` as a real process in a test: a free port, packs written beside it, a
small JSON client and a WebSocket listener."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class MainProcess:
    """``python main.py`` on a free port, with a tiny JSON client."""

    def __init__(self, base: Path, *flags: str, packs: dict[str, str] | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.base = base
        packs_dir = base / "packs"
        packs_dir.mkdir(parents=True, exist_ok=True)
        for name, source in (packs or {}).items():
            (packs_dir / name).write_text(source)
        self.log = (base / f"server-{self.port}.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "main.py"),
                "--port",
                str(self.port),
                "--base-directory",
                str(base),
                "--custom-nodes-directory",
                str(packs_dir),
                *flags,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, (base / f"server-{self.port}.log").read_text()
            try:
                if self.request("GET", "/system_stats")[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        return status, json.loads(payload) if payload else None

    def queue(self, prompt: dict[str, Any], **extra: Any) -> dict[str, Any]:
        status, body = self.request("POST", "/prompt", {"prompt": prompt, **extra})
        assert status == 200, body
        return body

    def queue_ids(self) -> tuple[list[str], list[str]]:
        """(running ids, pending ids in the order they will run)."""
        body = self.request("GET", "/queue")[1]
        return [i[1] for i in body["queue_running"]], [i[1] for i in body["queue_pending"]]

    def wait(self, condition: Any, what: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = condition()
            if found:
                return found
            time.sleep(0.05)
        raise TimeoutError(what)

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        return self.request("GET", f"/history/{prompt_id}")[1].get(prompt_id)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()


@contextlib.contextmanager
def main_process(base: Path, *flags: str, packs: dict[str, str] | None = None) -> Iterator[MainProcess]:
    server = MainProcess(base, *flags, packs=packs)
    try:
        yield server
    finally:
        server.kill()
