"""A WebSocket client that records every event, for asserting on event sequences."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import aiohttp


class EventRecorder:
    def __init__(self, ws_url: str, client_id: str) -> None:
        self.url = f"{ws_url}?clientId={client_id}"
        self.client_id = client_id
        self.events: list[tuple[str, Any]] = []
        self.previews: list[tuple[int, int, bytes]] = []
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> EventRecorder:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.url)
        self._task = asyncio.create_task(self._read())
        await self.wait_for(lambda e, d: e == "status")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._ws is not None and self._session is not None
        await self._ws.close()
        if self._task:
            self._task.cancel()
        await self._session.close()

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                self.events.append((data["type"], data["data"]))
            elif msg.type == aiohttp.WSMsgType.BINARY:
                event_type, image_type = struct.unpack(">II", msg.data[:8])
                self.previews.append((event_type, image_type, msg.data[8:]))
                self.events.append(("<binary>", event_type))
            self._changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> tuple[str, Any]:
        """The first recorded event matching ``predicate(event, data)``, waiting for it."""

        async def scan() -> tuple[str, Any]:
            seen = 0
            while True:
                for event, data in self.events[seen:]:
                    if predicate(event, data):
                        return event, data
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def wait_done(self, prompt_id: str, timeout: float = 30.0) -> None:
        """ComfyUI's done signal: ``executing`` with ``node: null`` for the prompt."""
        await self.wait_for(
            lambda e, d: e == "executing" and d.get("node") is None and d.get("prompt_id") == prompt_id, timeout
        )

    def for_prompt(self, prompt_id: str) -> list[tuple[str, Any]]:
        return [(e, d) for e, d in self.events if isinstance(d, dict) and d.get("prompt_id") == prompt_id]

    def executed_nodes(self, prompt_id: str) -> list[str]:
        return [d["node"] for e, d in self.for_prompt(prompt_id) if e == "executing" and d.get("node")]
