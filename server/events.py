"""Delivery of events to WebSocket clients, from any thread, in order.

Node code runs on the worker thread; the sockets live on the event loop. Events go into a
thread-safe deque and one task sends them, so order is kept and the worker never waits on
a slow client. The loop is woken once per batch, not once per event: with a wake-up per
event the two threads traded the GIL for every node and that doubled the per-node cost.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import struct
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

#: ComfyUI's binary frame types
PREVIEW_IMAGE = 1
UNENCODED_PREVIEW_IMAGE = 2
IMAGE_TYPES = {"JPEG": 1, "PNG": 2}


def encode_preview(image_format: str, data: bytes) -> bytes:
    """ComfyUI's framing: big-endian event type, big-endian image type, image bytes."""
    return struct.pack(">II", PREVIEW_IMAGE, IMAGE_TYPES.get(image_format.upper(), 1)) + data


def _dumps(event: str, data: Any) -> str:
    return json.dumps({"type": event, "data": data}, default=str)


class EventBus:
    def __init__(self) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending: collections.deque[tuple[str, Any, str | None]] = collections.deque()
        self._wake_scheduled = False
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._pump(), name="weft-event-pump")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for ws in list(self.sockets.values()):
            await ws.close()

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        """Queue an event from any thread; ``sid=None`` broadcasts."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        self._pending.append((event, data, sid))
        if not self._wake_scheduled:
            self._wake_scheduled = True
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # loop closed while shutting down
                pass

    def _wake(self) -> None:
        # cleared before the pump drains, so an event appended after this point schedules
        # a new wake-up and none is left behind
        self._wake_scheduled = False
        assert self._ready is not None
        self._ready.set()

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        if event == "preview_bytes":
            message: str | bytes = data
        else:
            message = _dumps(event, data)
        if sid is None:
            targets = list(self.sockets.values())
        else:
            ws = self.sockets.get(sid)
            targets = [ws] if ws is not None else []
        for ws in targets:
            if ws.closed:
                continue
            try:
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_str(message)
            except (ConnectionResetError, RuntimeError) as exc:
                log.debug("dropping event for a closed socket: %s", exc)

    async def _pump(self) -> None:
        assert self._ready is not None
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._pending:
                event, data, sid = self._pending.popleft()
                try:
                    await self.send(event, data, sid)
                except Exception:  # a bad payload must not stop delivery of the next ones
                    log.exception("could not send event %s", event)
